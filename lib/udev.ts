/**
 * The udev side of a uevent: what udevd broadcasts to its listeners (libudev's
 * udev_monitor, sd-device-monitor, pyudev, `udevadm monitor --udev`) after it processed a
 * kernel uevent. The wire format is libudev's netlink message: a 40-byte header ("libudev",
 * magic, header size, where the properties are, and hashes that in-kernel socket filters of
 * subscribers match on) followed by the properties as NUL-terminated KEY=VALUE strings.
 * Pure: the daemon sends these bytes to a relay inside the namespace it serves.
 */
import type { Uevent } from './events.js'

/** libudev's message magic; stored big-endian, as subscribers' BPF filters load it. */
export const UDEV_MONITOR_MAGIC = 0xfeedcafe
export const UDEV_HEADER_SIZE = 40

/** MurmurHash2 (32-bit, seed 0, little-endian words): libudev's string hash for filters. */
export function murmurHash2 (data: Uint8Array, seed = 0): number {
  const m = 0x5bd1e995
  let len = data.length
  let h = (seed ^ len) >>> 0
  let i = 0
  while (len >= 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
    k = Math.imul(k, m)
    k ^= k >>> 24
    k = Math.imul(k, m)
    h = Math.imul(h, m) ^ k
    i += 4
    len -= 4
  }
  // The tail: up to three bytes.
  if (len === 3) h ^= data[i + 2] << 16
  if (len >= 2) h ^= data[i + 1] << 8
  if (len >= 1) { h ^= data[i]; h = Math.imul(h, m) }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h >>> 0
}

/** The model's strings are byte strings (stores are latin1): hashed and sent as those bytes. */
const bytes = (s: string): Buffer => Buffer.from(s, 'latin1')

const stringHash = (s: string): number => murmurHash2(bytes(s))

/** The 64-bit tag bloom filter as [hi, lo]: four bits per tag, picked from its hash. */
export function tagBloom (tags: readonly string[]): [number, number] {
  let hi = 0
  let lo = 0
  for (const tag of tags) {
    const h = stringHash(tag)
    for (const bit of [h & 63, (h >>> 6) & 63, (h >>> 12) & 63, (h >>> 18) & 63]) {
      if (bit >= 32) hi |= 1 << (bit - 32); else lo |= 1 << bit
    }
  }
  return [hi >>> 0, lo >>> 0]
}

/**
 * The properties udevd sends for a kernel event: the kernel's own (ACTION, DEVPATH,
 * SUBSYSTEM, the device's variables, SEQNUM) and USEC_INITIALIZED, when the device was first
 * seen (CLOCK_MONOTONIC, the clock of the kernel log's timestamps).
 */
function udevProperties (e: Uevent, usecInitialized: number): Array<[string, string]> {
  return [
    ['ACTION', e.action],
    ['DEVPATH', e.devpath],
    ['SUBSYSTEM', e.subsystem],
    ...e.env,
    ['SEQNUM', String(e.seq)],
    ['USEC_INITIALIZED', String(usecInitialized)]
  ]
}

/**
 * A libudev netlink message for `props`. Values are sent as the bytes they are (attribute
 * stores are latin1 in the model). Tags (none of the AP devices has one without udev rules)
 * go into the bloom filter and the TAGS property.
 */
export function udevMessage (props: Array<[string, string]>): Uint8Array {
  const get = (k: string): string | undefined => props.find(p => p[0] === k)?.[1]
  const body = bytes(props.map(([k, v]) => `${k}=${v}\0`).join(''))
  const [bloomHi, bloomLo] = tagBloom((get('TAGS') ?? '').split(':').filter(t => t !== ''))
  const devtype = get('DEVTYPE')
  const msg = Buffer.alloc(UDEV_HEADER_SIZE + body.length) // zeroed: "libudev" ends in its NUL
  msg.write('libudev', 0, 'latin1')
  // The magic and the hashes in network order; the sizes in the host's (little-endian here).
  msg.writeUInt32BE(UDEV_MONITOR_MAGIC, 8)
  msg.writeUInt32LE(UDEV_HEADER_SIZE, 12)
  msg.writeUInt32LE(UDEV_HEADER_SIZE, 16)
  msg.writeUInt32LE(body.length, 20)
  msg.writeUInt32BE(stringHash(get('SUBSYSTEM') ?? ''), 24)
  msg.writeUInt32BE(devtype === undefined ? 0 : stringHash(devtype), 28)
  msg.writeUInt32BE(bloomHi, 32)
  msg.writeUInt32BE(bloomLo, 36)
  body.copy(msg, UDEV_HEADER_SIZE)
  return msg
}

/**
 * udevd's memory of devices: when each was initialized (its first event), forgotten on
 * `remove`. Turns kernel uevents into udev messages; injected faults (`APSIM` records) are
 * the simulator's, not device events, and give nothing.
 */
export class UdevDatabase {
  private readonly initialized = new Map<string, number>()

  /** Learns the devices of events already sent (a relay attached to a running host). */
  constructor (past: Iterable<Uevent> = []) {
    for (const e of past) this.note(e)
  }

  private note (e: Uevent): number {
    const known = this.initialized.get(e.devpath)
    if (e.action === 'remove') {
      this.initialized.delete(e.devpath)
      return known ?? e.usec
    }
    if (known !== undefined) return known
    this.initialized.set(e.devpath, e.usec)
    return e.usec
  }

  message (e: Uevent): Uint8Array | undefined {
    if (e.action === 'fault') return undefined
    return udevMessage(udevProperties(e, this.note(e)))
  }
}
