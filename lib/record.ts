/**
 * `apsim record`: a topology recorded from a real host's AP bus. Reads `bus/ap` and
 * `devices/ap` of a `/sys`-like tree through an injected reader and lister (no I/O here) and
 * returns the topology in file form (what `topologyFrom` reads), validated.
 */
import { modeOf } from './ap/device.js'
import { QCI_FEATURES, type QciFeature, topologyFrom } from './topology.js'

/** The text of a file relative to the root (`bus/ap/features`), undefined if it cannot be read. */
export type RecordReader = (relPath: string) => string | undefined
/** The names in a directory relative to the root, undefined if it cannot be listed. */
export type RecordLister = (relDir: string) => string[] | undefined

export interface Recorded {
  /** The topology in file form (keys as in a topology file). */
  topology: Record<string, unknown>
  /** What could not be recorded exactly, in words. */
  notes: string[]
}

export class RecordError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'RecordError'
  }
}

const TYPE_NAMES: Record<number, string> = { 10: 'CEX4', 11: 'CEX5', 12: 'CEX6', 13: 'CEX7', 14: 'CEX8' }
const ALL_ONES = '0x' + 'f'.repeat(64)
const POLL_TIMEOUT_ZVM = '1500000'

/** The ids whose bits are set in a 64-hex-digit mask (`0x` + digits, bit 0 leftmost). */
export function maskIds (text: string): number[] {
  const digits = text.trim().replace(/^0x/i, '')
  if (!/^[0-9a-f]+$/i.test(digits)) throw new RecordError(`not a mask: ${JSON.stringify(text.trim())}`)
  const ids: number[] = []
  for (let k = 0; k < digits.length; k++) {
    const nibble = parseInt(digits[k], 16)
    for (let b = 0; b < 4; b++) if ((nibble & (8 >> b)) !== 0) ids.push(4 * k + b)
  }
  return ids
}

/**
 * Records the AP configuration of the tree `read`/`list` see; throws RecordError if there is no
 * AP bus. `progress` hears of each card read (a big tree through FUSE takes a while).
 */
export function recordTopology (read: RecordReader, list: RecordLister, progress?: (done: number, total: number) => void): Recorded {
  const notes: string[] = []
  const text = (rel: string): string | undefined => {
    const t = read(rel)
    return t === undefined ? undefined : t.replace(/\n$/, '')
  }
  const need = (rel: string): string => {
    const t = text(rel)
    if (t === undefined) throw new RecordError(`cannot read ${rel}: is this a /sys tree of a host with an AP bus?`)
    return t
  }
  const int = (rel: string, t: string): number => {
    if (!/^-?\d+$/.test(t.trim())) throw new RecordError(`${rel}: ${JSON.stringify(t)} is not a decimal number`)
    return Number(t.trim())
  }

  const maxAdapterId = int('bus/ap/ap_max_adapter_id', need('bus/ap/ap_max_adapter_id'))
  const maxDomainId = int('bus/ap/ap_max_domain_id', need('bus/ap/ap_max_domain_id'))
  const features = text('bus/ap/features')
  const adapterMask = text('bus/ap/ap_adapter_mask')
  const usageMask = text('bus/ap/ap_usage_domain_mask')
  const controlMask = text('bus/ap/ap_control_domain_mask')
  // `features` (6.4+) says `-` without QCI; older kernels only say it through the masks.
  const qciAvailable = features !== undefined ? features.trim() !== '-' : (usageMask !== undefined && usageMask !== 'not supported')

  const topology: Record<string, unknown> = {}
  const poll = text('bus/ap/poll_timeout')
  topology.host = poll?.trim() === POLL_TIMEOUT_ZVM ? 'zvm' : 'lpar'

  if (qciAvailable) {
    const words = (features ?? '').split(/\s+/).filter(w => w !== '')
    const known = words.filter((w): w is QciFeature => (QCI_FEATURES as readonly string[]).includes(w))
    for (const w of words) if (!known.includes(w as QciFeature)) notes.push(`bus/ap/features: unknown feature ${w} left out`)
    if (features === undefined) notes.push('bus/ap/features is missing (kernel before 6.4): assumed APSC APXA QACT RC8A')
    topology.qci = {
      available: true,
      features: features === undefined ? ['APSC', 'APXA', 'QACT', 'RC8A'] : known,
      max_adapter_id: maxAdapterId,
      max_domain_id: maxDomainId
    }
  } else {
    topology.qci = { available: false }
  }

  const irq = text('bus/ap/ap_interrupts')
  if (irq !== undefined) topology.interrupts = irq.trim() === '1'

  // Adapters: the card devices.
  const cards = (list('devices/ap') ?? []).filter(n => /^card[0-9a-f]{2}$/.test(n)).sort()
  if (list('devices/ap') === undefined) throw new RecordError('cannot list devices/ap: is this a /sys tree of a host with an AP bus?')
  const queueDomains = new Set<number>()
  const adapters: Array<Record<string, unknown>> = []
  // A Secure Execution guest's queues have se_bind; their ap_functions carry the bind state (bits 16-17).
  const seGuest = cards.some(c => (list(`devices/ap/${c}`) ?? []).some(q => /^[0-9a-f]{2}\.[0-9a-f]{4}$/.test(q) && text(`devices/ap/${c}/${q}/se_bind`) !== undefined))
  if (seGuest) {
    topology.host = 'kvm'
    topology.secure_execution = true
    notes.push('a Secure Execution guest: the queues\' bind and association states are not recorded (they start unbound)')
  }
  for (const [i, card] of cards.entries()) {
    progress?.(i, cards.length)
    const id = parseInt(card.slice(4), 16)
    const base = `devices/ap/${card}`
    const queues = (list(base) ?? []).filter(n => new RegExp(`^${card.slice(4)}\\.[0-9a-f]{4}$`).test(n)).sort()
    for (const q of queues) queueDomains.add(parseInt(q.slice(3), 16))

    const rawType = int(`${base}/raw_hwtype`, need(`${base}/raw_hwtype`))
    // A queue shows the unfiltered facility word; the card only its top 16 bits.
    let fnText: string | undefined
    for (const q of queues) { fnText = text(`${base}/${q}/ap_functions`); if (fnText !== undefined) break }
    fnText ??= need(`${base}/ap_functions`)
    if (!/^0x[0-9a-f]{1,8}$/i.test(fnText.trim())) throw new RecordError(`${base}/ap_functions: ${JSON.stringify(fnText)} is not a facility word`)
    const functions = (parseInt(fnText.trim().slice(2), 16) & (seGuest ? ~0xc000 : ~0)) >>> 0
    const mode = modeOf(functions)
    if (mode === undefined) {
      notes.push(`${card}: ap_functions ${fnText.trim()} has no mode bit (accel, CCA, EP11); left out`)
      continue
    }
    const a: Record<string, unknown> = { id }
    if (TYPE_NAMES[rawType] !== undefined) a.type = TYPE_NAMES[rawType]
    else a.raw_type = rawType
    a.mode = mode
    a.functions = functions
    const depth = text(`${base}/depth`)
    if (depth !== undefined) a.depth = int(`${base}/depth`, depth)
    const size = text(`${base}/max_msg_size`)
    if (size !== undefined) {
      const bytes = int(`${base}/max_msg_size`, size)
      if (bytes !== 12288) {
        if (bytes % 4096 !== 0 || bytes / 4096 > 15 || bytes === 0) notes.push(`${card}: max_msg_size ${bytes} is not ml*4096 with ml 1..15; left at the default`)
        else a.ml = bytes / 4096
      }
    }
    const serial = text(`${base}/serialnr`)
    if (serial !== undefined && serial.trim() !== '') a.serial = serial.trim()
    const config = text(`${base}/config`)
    if (config !== undefined) a.config = config.trim() === '1'
    const chkstop = text(`${base}/chkstop`)
    if (chkstop !== undefined) a.chkstop = chkstop.trim() !== '0'
    adapters.push(a)
  }
  progress?.(cards.length, cards.length)
  topology.adapters = adapters
  if (qciAvailable && adapterMask !== undefined && adapterMask !== 'not supported') {
    const seen = new Set(adapters.map(a => a.id as number))
    const hidden = maskIds(adapterMask).filter(i => !seen.has(i))
    if (hidden.length > 0) notes.push(`adapters ${hidden.join(', ')} are in ap_adapter_mask but have no card device; left out`)
  }

  // Domains: the machine's (QCI) when it tells them, else what the queues show.
  if (qciAvailable && usageMask !== undefined && usageMask !== 'not supported') {
    topology.usage_domains = maskIds(usageMask).filter(d => d <= 255)
    if (controlMask !== undefined && controlMask !== 'not supported') topology.control_domains = maskIds(controlMask).filter(d => d <= 255)
  } else {
    topology.usage_domains = [...queueDomains].sort((a, b) => a - b)
    if (cards.length === 0) notes.push('no QCI and no card devices: the usage domains are unknown')
  }

  const kernelParams: Record<string, unknown> = {}
  for (const m of ['apmask', 'aqmask'] as const) {
    const v = text(`bus/ap/${m}`)
    if (v === undefined) continue
    const t = v.trim().toLowerCase()
    if (!/^0x[0-9a-f]{64}$/.test(t)) throw new RecordError(`bus/ap/${m}: ${JSON.stringify(v)} is not a 256-bit mask`)
    if (t !== ALL_ONES) kernelParams[`ap.${m}`] = t
  }
  if (Object.keys(kernelParams).length > 0) topology.kernel_params = kernelParams

  const drivers = list('bus/ap/drivers')
  if (drivers !== undefined) {
    const modules: string[] = []
    if (drivers.includes('cex4card') || drivers.includes('cex4queue')) modules.push('zcrypt_cex4')
    if (drivers.includes('vfio_ap')) modules.push('vfio_ap')
    topology.modules = modules
  }

  // What the simulator reads back must be what was recorded.
  topologyFrom(topology, 'recorded topology')
  return { topology, notes }
}
