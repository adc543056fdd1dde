/**
 * The udev messages in-process: libudev's hash (against the reference MurmurHash2 values),
 * the 40-byte header as sd-device-monitor and subscribers' socket filters read it, the
 * properties udevd adds, and udevd's memory of when a device was initialized.
 */
import test from 'ava'
import { UeventLog, type Uevent } from '../../lib/events.js'
import { Host } from '../../lib/host.js'
import { defaultTopology } from '../../lib/topology.js'
import { murmurHash2, tagBloom, UdevDatabase, udevMessage, UDEV_HEADER_SIZE, UDEV_MONITOR_MAGIC } from '../../lib/udev.js'

const hash = (s: string): number => murmurHash2(new TextEncoder().encode(s))

test('murmurHash2 gives the reference implementation\'s values (seed 0, every tail length)', t => {
  // From the C reference (Austin Appleby's MurmurHash2, as systemd ships it) on x86_64.
  const want: Array<[string, number]> = [
    ['', 0x00000000], ['a', 0x92685f5e], ['ap', 0xf026bf09], ['mdev', 0xbb5211c7], ['ap_card', 0xad29a260],
    ['ap_queue', 0x704b18d2], ['systemd', 0xa75f972a], ['vfio_ap', 0x7f1bfa5b], ['matrix', 0x9f470338]
  ]
  for (const [s, h] of want) t.is(hash(s), h, s)
})

test('the tag bloom filter sets four bits per tag, picked from the tag\'s hash', t => {
  t.deepEqual(tagBloom([]), [0, 0])
  const h = hash('systemd')
  const bits = [h & 63, (h >>> 6) & 63, (h >>> 12) & 63, (h >>> 18) & 63]
  const [hi, lo] = tagBloom(['systemd'])
  for (let b = 0; b < 64; b++) {
    const set = b >= 32 ? ((hi >>> (b - 32)) & 1) : ((lo >>> b) & 1)
    t.is(set === 1, bits.includes(b), `bit ${b}`)
  }
})

const ev = (over: Partial<Uevent> = {}): Uevent =>
  ({ seq: 7, usec: 1234, action: 'add', devpath: '/devices/ap/card04', subsystem: 'ap', env: [['DEVTYPE', 'ap_card'], ['MODE', 'cca']], ...over })

test('a message: "libudev", the magic and hashes in network order, sizes, then the NUL-separated properties', t => {
  const msg = udevMessage([['ACTION', 'add'], ['DEVPATH', '/devices/ap/card04'], ['SUBSYSTEM', 'ap'], ['DEVTYPE', 'ap_card'], ['SEQNUM', '7']])
  const v = new DataView(msg.buffer)
  t.is(new TextDecoder().decode(msg.subarray(0, 8)), 'libudev\0')
  t.is(v.getUint32(8, false), UDEV_MONITOR_MAGIC)
  t.is(v.getUint32(12, true), UDEV_HEADER_SIZE)
  t.is(v.getUint32(16, true), UDEV_HEADER_SIZE)
  const body = 'ACTION=add\0DEVPATH=/devices/ap/card04\0SUBSYSTEM=ap\0DEVTYPE=ap_card\0SEQNUM=7\0'
  t.is(v.getUint32(20, true), body.length)
  t.is(v.getUint32(24, false), hash('ap'))
  t.is(v.getUint32(28, false), hash('ap_card'))
  t.is(v.getUint32(32, false), 0) // no tags
  t.is(v.getUint32(36, false), 0)
  t.is(Buffer.from(msg.subarray(UDEV_HEADER_SIZE)).toString('latin1'), body)
  // No DEVTYPE: no devtype hash; TAGS: the bloom filter.
  const tagged = new DataView(udevMessage([['SUBSYSTEM', 'mdev'], ['TAGS', ':systemd:']]).buffer)
  t.is(tagged.getUint32(28, false), 0)
  t.deepEqual([tagged.getUint32(32, false), tagged.getUint32(36, false)], tagBloom(['systemd']))
})

test('udevd\'s properties: the kernel\'s, SEQNUM, then USEC_INITIALIZED from the device\'s first event', t => {
  const db = new UdevDatabase()
  const props = (e: Uevent): string => Buffer.from(db.message(e)!.subarray(UDEV_HEADER_SIZE)).toString('latin1').split('\0').filter(p => p !== '').join('\n')
  t.is(props(ev()), 'ACTION=add\nDEVPATH=/devices/ap/card04\nSUBSYSTEM=ap\nDEVTYPE=ap_card\nMODE=cca\nSEQNUM=7\nUSEC_INITIALIZED=1234')
  t.regex(props(ev({ seq: 9, usec: 5000, action: 'change' })), /SEQNUM=9\nUSEC_INITIALIZED=1234$/)
  t.regex(props(ev({ seq: 10, usec: 6000, action: 'remove' })), /SEQNUM=10\nUSEC_INITIALIZED=1234$/)
  // Forgotten with its removal: a new device at the same path is initialized anew.
  t.regex(props(ev({ seq: 11, usec: 7000 })), /USEC_INITIALIZED=7000$/)
})

test('injected faults are the simulator\'s records, not device events: no message', t => {
  t.is(new UdevDatabase().message(ev({ action: 'fault' })), undefined)
})

test('a database learnt from a running host\'s past events knows its devices', t => {
  const h = new Host(defaultTopology())
  const adds = h.uevents.records().filter(e => e.action === 'add' && e.devpath === '/devices/ap/card04')
  t.is(adds.length, 1)
  const db = new UdevDatabase(h.uevents.records())
  const log = new UeventLog(() => 999999)
  const change = log.emit('change', '/devices/ap/card04', 'ap')
  t.regex(Buffer.from(db.message(change)!).toString('latin1'), new RegExp(`USEC_INITIALIZED=${adds[0].usec}\0$`))
})
