/**
 * AP devices: cards (`cardXX`) and queues (`XX.YYYY`), the state the AP bus core keeps for
 * them, and the attributes the bus core gives every card and queue (ap_card.c, ap_queue.c).
 * Driver-specific attributes live with their drivers (zcrypt.ts, ../vfio/).
 */
import { fail } from '../errors.js'
import { sscanfInt } from '../parse.js'
import type { AttrDecl } from '../sysfs.js'
import type { AdapterMode } from '../topology.js'
import type { ApBus } from './bus.js'
import { queueFacility } from './se.js'

// Ids are 0..255: their hex forms come from tables (65,536 queue names at boot, 512 APQNs per
// `matrix` read).
const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))
const HEX4 = HEX2.map(h => `00${h}`)
const hex2 = (n: number): string => HEX2[n] ?? n.toString(16).padStart(2, '0')
const hex4 = (n: number): string => HEX4[n] ?? n.toString(16).padStart(4, '0')
export const cardName = (apid: number): string => `card${hex2(apid)}`
export const queueName = (apid: number, apqi: number): string => `${hex2(apid)}.${hex4(apqi)}`
export const apqnText = queueName

export type DriverName = 'cex4card' | 'cex4queue' | 'vfio_ap'

/** AP device states that sysfs exposes (ap_bus.h). */
export type DevState = 'uninitiated' | 'operating' | 'shutdown' | 'error'
/** A queue's Secure Execution bind state (TAPQ's BS field, AP_BS_Q_*). */
export type BindState = 'usable' | 'usable-no-secure-key' | 'available' | 'unusable'
/** The queue state machine, only as far as `reset` shows it. */
export type SmState = 'reset_start' | 'idle'

/** Mode bits of the TAPQ facility word. */
export const FAC_ACCEL = 0x08000000
export const FAC_CCA = 0x10000000
export const FAC_EP11 = 0x04000000

export function modeOf (functions: number): AdapterMode | undefined {
  if ((functions & FAC_ACCEL) !== 0) return 'accel'
  if ((functions & FAC_CCA) !== 0) return 'cca'
  if ((functions & FAC_EP11) !== 0) return 'ep11'
  return undefined
}

const hex8 = (v: number): string => '0x' + (v >>> 0).toString(16).toUpperCase().padStart(8, '0')

// Event variables every queue event carries, shared (never mutated): a mask flip emits
// 131,072 events, and the uevent ring keeps 65,536 of them.
const DEVTYPE_QUEUE: [string, string] = ['DEVTYPE', 'ap_queue']
const DRIVER_ENV: Record<DriverName, [string, string]> = { cex4card: ['DRIVER', 'cex4card'], cex4queue: ['DRIVER', 'cex4queue'], vfio_ap: ['DRIVER', 'vfio_ap'] }
const MODE_ENV: Record<AdapterMode, [string, string]> = { accel: ['MODE', 'accel'], cca: ['MODE', 'cca'], ep11: ['MODE', 'ep11'] }
const QUEUE_ENVS = new Map<string | undefined, Map<AdapterMode | undefined, Array<[string, string]>>>()
/** A queue's variables (ap_queue_uevent): one frozen array per driver and mode. */
function queueEnv (driver: string | undefined, mode: AdapterMode | undefined): Array<[string, string]> {
  let byMode = QUEUE_ENVS.get(driver)
  if (byMode === undefined) QUEUE_ENVS.set(driver, byMode = new Map())
  let env = byMode.get(mode)
  if (env === undefined) {
    env = [DEVTYPE_QUEUE]
    if (driver !== undefined) env.push(DRIVER_ENV[driver as DriverName] ?? ['DRIVER', driver])
    if (mode !== undefined) env.push(MODE_ENV[mode])
    Object.freeze(env)
    byMode.set(mode, env)
  }
  return env
}

export class Card {
  config = true
  chkstop = false
  requestCount = 0n
  driver: DriverName | undefined
  /** zcrypt's own online flag (the `online` file also needs config and no checkstop). */
  zcryptOnline = true
  readonly queues = new Map<number, Queue>()
  // Fixed for the card's life and needed by every event and lookup: computed once.
  readonly name: string
  readonly devpath: string
  readonly mode: AdapterMode | undefined

  constructor (
    readonly bus: ApBus,
    readonly id: number,
    readonly rawType: number,
    readonly hwtype: number,
    /** The unfiltered facility word; the card shows only its top 16 bits. */
    readonly functions: number,
    readonly depth: number,
    readonly ml: number,
    readonly serial: string
  ) {
    this.name = cardName(id)
    this.devpath = `/devices/ap/${this.name}`
    this.mode = modeOf(functions)
  }

  get treePath (): string { return this.devpath.slice(1) }
  /** What the card shows: 6.4 hides the low 16 bits (SE bind state and below). */
  get cardFunctions (): number { return this.bus.profile.apFeatures64 ? (this.functions & 0xffff0000) >>> 0 : this.functions >>> 0 }
  get online (): boolean { return this.config && !this.chkstop && this.zcryptOnline }
  get maxMsgSize (): number { return this.ml !== 0 ? this.ml * 4096 : 12288 }

  /** Queues in ascending domain order. */
  sortedQueues (): Queue[] { return [...this.queues.values()].sort((a, b) => a.apqi - b.apqi) }

  uevent (): Array<[string, string]> {
    const env: Array<[string, string]> = [['DEVTYPE', 'ap_card']]
    if (this.driver !== undefined) env.push(['DRIVER', this.driver])
    env.push(['DEV_TYPE', this.hwtype.toString(16).toUpperCase().padStart(4, '0')])
    env.push(['MODALIAS', `ap:t${this.hwtype.toString(16).toUpperCase().padStart(2, '0')}`])
    const mode = this.mode
    if (mode !== undefined) env.push(['MODE', mode])
    return env
  }
}

export class Queue {
  config = true
  chkstop = false
  devState: DevState = 'uninitiated'
  smState: SmState = 'reset_start'
  requestCount = 0n
  driver: DriverName | undefined
  zcryptOnline = true
  /** 6.19 driver_override; undefined when unset. */
  driverOverride: string | undefined
  /** Queue resets (ZAPQ) issued by vfio_ap; the simulator counts them. */
  resets = 0
  /** Result of the last reset vfio_ap issued (its filter looks at it). */
  resetResult: 'normal' | 'deconfigured' | 'checkstopped' | 'failed' = 'normal'
  /** In a Secure Execution guest (se.ts): the bind state and the association index. */
  seBind: BindState = 'available'
  assocIdx: number | undefined

  // `XX.YYYY` and `/devices/ap/cardXX/XX.YYYY`: every event and lookup needs them, so with
  // 65,536 queues they are computed once, not per use.
  readonly name: string
  readonly devpath: string

  constructor (readonly card: Card, readonly apqi: number) {
    this.name = queueName(card.id, apqi)
    this.devpath = `${card.devpath}/${this.name}`
  }

  get apid (): number { return this.card.id }
  get treePath (): string { return this.devpath.slice(1) }
  get online (): boolean { return this.config && !this.chkstop && this.zcryptOnline }

  /** ap_queue_init_state: reset and start operating, unless the hardware says otherwise. */
  initialise (): void {
    if (this.config && !this.chkstop) {
      this.devState = 'operating'
      this.smState = 'idle'
    } else {
      this.devState = 'error'
      this.smState = 'reset_start'
    }
  }

  /** The device's uevent variables; shared arrays (the caller must copy to change them). */
  uevent (): Array<[string, string]> {
    return queueEnv(this.driver, this.card.mode)
  }
}

export const ueventText = (env: Array<[string, string]>): string => env.map(([k, v]) => `${k}=${v}\n`).join('')

/** sscanf("%d") that must yield 0 or 1, as the config and online stores use it. */
export function parseZeroOne (buf: string, what: string): boolean {
  const v = sscanfInt(buf, 'd')
  if (v !== 0 && v !== 1) fail('EINVAL', `${what}: ${JSON.stringify(buf)} is not 0 or 1`)
  return v === 1
}

// ---------------------------------------------------------------------------------------
// Bus-core attributes of a card (ap_card.c)

export const cardCoreAttrs: Array<AttrDecl<Card>> = [
  { name: 'hwtype', mode: 0o444, show: c => `${c.hwtype}\n` },
  { name: 'raw_hwtype', mode: 0o444, show: c => `${c.rawType}\n` },
  { name: 'depth', mode: 0o444, show: c => `${c.depth}\n` },
  { name: 'ap_functions', mode: 0o444, show: c => `${hex8(c.cardFunctions)}\n` },
  {
    name: 'request_count',
    mode: 0o644,
    show: c => `${c.requestCount}\n`,
    store: c => {
      c.requestCount = 0n
      for (const q of c.queues.values()) if (q.driver !== undefined) q.requestCount = 0n
    }
  },
  { name: 'requestq_count', mode: 0o444, show: () => '0\n' },
  { name: 'pendingq_count', mode: 0o444, show: () => '0\n' },
  { name: 'modalias', mode: 0o444, show: c => `ap:t${c.hwtype.toString(16).toUpperCase().padStart(2, '0')}\n` },
  {
    name: 'config',
    mode: 0o644,
    show: c => `${c.config ? 1 : 0}\n`,
    store: (c, buf) => c.bus.storeCardConfig(c, parseZeroOne(buf, 'config'))
  },
  { name: 'chkstop', mode: 0o444, visible: c => c.bus.profile.chkstopAndMaxMsgSize, show: c => `${c.chkstop ? 1 : 0}\n` },
  { name: 'max_msg_size', mode: 0o444, visible: c => c.bus.profile.chkstopAndMaxMsgSize, show: c => `${c.maxMsgSize}\n` },
  { name: 'uevent', mode: 0o644, show: c => ueventText(c.uevent()), store: (c, buf) => c.bus.synthUevent(c, buf) }
]

// ---------------------------------------------------------------------------------------
// Bus-core attributes of a queue (ap_queue.c)

export const queueCoreAttrs: Array<AttrDecl<Queue>> = [
  {
    name: 'request_count',
    mode: 0o644,
    show: q => q.devState === 'uninitiated' ? '-\n' : `${q.requestCount}\n`,
    store: q => { q.requestCount = 0n }
  },
  { name: 'requestq_count', mode: 0o444, show: () => '0\n' },
  { name: 'pendingq_count', mode: 0o444, show: () => '0\n' },
  {
    name: 'reset',
    mode: 0o644,
    show: q => q.smState === 'reset_start' ? 'Reset in progress.\n' : 'No Reset Timer set.\n',
    store: q => {
      // Flush and reset: the state machine only runs for initialised queues.
      q.smState = 'reset_start'
      if (q.devState !== 'uninitiated' && q.config && !q.chkstop) q.smState = 'idle'
    }
  },
  {
    name: 'interrupt',
    mode: 0o444,
    show: q => q.card.bus.interrupts && q.devState === 'operating' ? 'Interrupts enabled.\n' : 'Interrupts disabled.\n'
  },
  { name: 'config', mode: 0o444, show: q => `${q.config ? 1 : 0}\n` },
  { name: 'chkstop', mode: 0o444, visible: q => q.card.bus.profile.chkstopAndMaxMsgSize, show: q => `${q.chkstop ? 1 : 0}\n` },
  { name: 'ap_functions', mode: 0o444, visible: q => q.card.bus.profile.apFeatures64, show: q => `${hex8(queueFacility(q))}\n` },
  {
    name: 'driver_override',
    mode: 0o644,
    visible: q => q.card.bus.profile.driverOverride,
    show: q => `${q.driverOverride ?? ''}\n`,
    store: (q, buf) => q.card.bus.storeDriverOverride(q, buf)
  },
  { name: 'uevent', mode: 0o644, show: q => ueventText(q.uevent()), store: (q, buf) => q.card.bus.synthUevent(q, buf) }
]

