/**
 * The zcrypt device drivers `cex4card` and `cex4queue` (module zcrypt_cex4): what they accept
 * at probe time and the attributes they add while bound (zcrypt_card.c, zcrypt_queue.c,
 * zcrypt_cex4.c).
 */
import { fail } from '../errors.js'
import type { AttrDecl } from '../sysfs.js'
import type { ApDriver } from './bus.js'
import { type Card, type Queue, modeOf, parseZeroOne } from './device.js'

/** Synthetic but stable 64-bit patterns, so listings do not change from run to run. */
function pattern (seed: string, words: number): string {
  let h = 0xcbf29ce484222325n
  let out = ''
  for (let w = 0; w < words; w++) {
    for (const ch of `${seed}/${w}`) h = ((h ^ BigInt(ch.charCodeAt(0))) * 0x100000001b3n) & 0xffffffffffffffffn
    out += h.toString(16).padStart(16, '0')
  }
  return out
}

export function zcryptTypeName (c: Card): string {
  const suffix = { accel: 'A', cca: 'C', ep11: 'P' }[c.mode ?? 'accel']
  return `CEX${c.hwtype - 6}${suffix}`
}

/** zcrypt_cex4_card_probe / queue_probe refuse devices without a mode bit. */
export function zcryptProbe (card: Card): void {
  if (modeOf(card.functions) === undefined) fail('ENODEV', `${card.name} has no accelerator, CCA or EP11 mode bit`)
}

const bound = (c: Card): boolean => c.driver === 'cex4card'
const boundQ = (q: Queue): boolean => q.driver === 'cex4queue'

const EP11_OP_MODES = ['FIPS2009', 'BSI2009', 'FIPS2011', 'BSI2011', 'SIGG-IMPORT', 'SIGG', 'BSICC2017', 'FIPS2021', 'FIPS2024']

/** ep11_serialnr_show: `%16.16s`, or an empty line when the card reports none (CCA's field holds 8). */
const serialnrEp11 = (serial: string): string => serial === '' ? '\n' : `${serial.slice(0, 16).padStart(16, ' ')}\n`

export const zcryptCardAttrs: Array<AttrDecl<Card>> = [
  { name: 'type', mode: 0o444, visible: bound, show: c => `${zcryptTypeName(c)}\n` },
  {
    name: 'online',
    mode: 0o644,
    visible: bound,
    show: c => `${c.online ? 1 : 0}\n`,
    store: (c, buf) => c.bus.storeCardOnline(c, parseZeroOne(buf, 'online'))
  },
  { name: 'load', mode: 0o444, visible: bound, show: () => '0\n' },
  {
    name: 'serialnr',
    mode: 0o444,
    visible: c => bound(c) && (c.mode === 'cca' || c.mode === 'ep11'),
    show: c => c.mode === 'cca' ? (c.bus.apDomain < 0 ? '\n' : `${c.serial.slice(0, 8)}\n`) : serialnrEp11(c.serial)
  },
  { name: 'API_ordinalnr', mode: 0o444, visible: c => bound(c) && c.mode === 'ep11', show: () => '6\n' },
  { name: 'FW_version', mode: 0o444, visible: c => bound(c) && c.mode === 'ep11', show: () => '7.25\n' },
  { name: 'op_modes', mode: 0o444, visible: c => bound(c) && c.mode === 'ep11', show: () => `${EP11_OP_MODES[7]}\n` }
]

function ccaMkvps (q: Queue): string {
  if (!q.online) {
    return ['AES', 'APKA', 'ASYM'].flatMap(k => ['NEW', 'CUR', 'OLD'].map(r => `${k} ${r}: - -\n`)).join('')
  }
  const seed = `${q.card.serial}/${q.apqi}`
  const lines: string[] = []
  for (const [key, words] of [['AES', 1], ['APKA', 1], ['ASYM', 2]] as const) {
    lines.push(`${key} NEW: empty 0x${'0'.repeat(16 * words)}\n`)
    lines.push(`${key} CUR: valid 0x${pattern(`${seed}/${key}/cur`, words)}\n`)
    lines.push(`${key} OLD: valid 0x${pattern(`${seed}/${key}/old`, words)}\n`)
  }
  return lines.join('')
}

function ep11Mkvps (q: Queue): string {
  if (!q.online) return 'WK CUR: - -\nWK NEW: - -\n'
  return `WK CUR: valid 0x${pattern(`${q.card.serial}/${q.apqi}/wk`, 4)}\nWK NEW: empty -\n`
}

export const zcryptQueueAttrs: Array<AttrDecl<Queue>> = [
  {
    name: 'online',
    mode: 0o644,
    visible: boundQ,
    show: q => `${q.online ? 1 : 0}\n`,
    store: (q, buf) => q.card.bus.storeQueueOnline(q, parseZeroOne(buf, 'online'))
  },
  { name: 'load', mode: 0o444, visible: boundQ, show: () => '0\n' },
  {
    name: 'mkvps',
    mode: 0o444,
    visible: q => boundQ(q) && (q.card.mode === 'cca' || q.card.mode === 'ep11'),
    show: q => q.card.mode === 'cca' ? ccaMkvps(q) : ep11Mkvps(q)
  },
  {
    name: 'op_modes',
    mode: 0o444,
    visible: q => boundQ(q) && q.card.mode === 'ep11',
    show: q => q.online ? `${EP11_OP_MODES[7]}\n` : '\n'
  }
]

const CEX4_TYPES = [10, 11, 12, 13, 14] as const

/** The two drivers of module zcrypt_cex4, in registration order. */
export function zcryptDrivers (): ApDriver[] {
  return [
    {
      name: 'cex4card',
      module: 'zcrypt_cex4',
      binds: 'card',
      isDefault: true,
      types: CEX4_TYPES,
      probe: dev => {
        const c = dev as Card
        zcryptProbe(c)
        c.zcryptOnline = true
      },
      remove: () => {}
    },
    {
      name: 'cex4queue',
      module: 'zcrypt_cex4',
      binds: 'queue',
      isDefault: true,
      types: CEX4_TYPES,
      probe: dev => {
        const q = dev as Queue
        zcryptProbe(q.card)
        q.initialise()
        q.zcryptOnline = true
      },
      remove: () => {}
    }
  ]
}
