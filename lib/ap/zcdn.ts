/**
 * zcrypt's device nodes (zcrypt_api.c): the default `z90crypt` misc device, and the extra
 * nodes of CONFIG_ZCRYPT_MULTIDEVNODES — `/sys/class/zcrypt/create` and `destroy` make and
 * remove class devices `/sys/devices/virtual/zcrypt/NAME`, each with its own permission masks
 * (`ioctlmask`, `apmask`, `aqmask`, `admask`) that restrict what a process holding that
 * `/dev` node may reach. All masks start empty; they take the `bus/ap/apmask` grammar.
 *
 * Device numbers: the zcrypt region's major is dynamic (alloc_chrdev_region) and so is the
 * misc minor of z90crypt; apsim uses fixed, plausible values. The `/dev` nodes themselves are
 * not simulated (a sysfs mount cannot make them).
 */
import { fail } from '../errors.js'
import type { KernelLog, SynthTarget, UeventLog } from '../events.js'
import { Mask, hex2mask, parseApMask } from '../mask.js'
import { cstr } from '../parse.js'
import type { KernelProfile } from '../profiles.js'
import type { PowerDirs } from '../power.js'
import { type AttrDecl, DirType, type DirNode } from '../sysfs.js'

/** ZCRYPT_MAX_MINOR_NODES: minors 0..255 of the zcrypt region. */
export const ZCRYPT_MAX_MINOR_NODES = 256
/** ZCDN_MAX_NAME: a name keeps at most 31 characters. */
const ZCDN_MAX_NAME = 32
export const ZCRYPT_MAJOR = 245
const MISC_MAJOR = 10
export const Z90CRYPT_MINOR = 63

export type ZcdnMaskName = 'ioctlmask' | 'apmask' | 'aqmask' | 'admask'
const MASKS: readonly ZcdnMaskName[] = ['ioctlmask', 'apmask', 'aqmask', 'admask']

export interface Zcdn {
  readonly name: string
  readonly minor: number
  masks: Record<ZcdnMaskName, Mask>
}

/** What a snapshot keeps: every node, its minor and masks (`0x` + 64 hex digits). */
export interface ZcdnState {
  nodes: Array<{ name: string, minor: number, ioctlmask: string, apmask: string, aqmask: string, admask: string }>
}

const devpath = (name: string): string => `/devices/virtual/zcrypt/${name}`

/** dev_uevent of a char device: MAJOR, MINOR, DEVNAME (a `!` in the name is a `/` in /dev). */
const devEnv = (major: number, minor: number, name: string): Array<[string, string]> =>
  [['MAJOR', String(major)], ['MINOR', String(minor)], ['DEVNAME', name.replaceAll('!', '/')]]

export class ZcryptNodes {
  private readonly nodes = new Map<string, Zcdn>()

  constructor (readonly profile: KernelProfile, private readonly klog: KernelLog, private readonly uevents: UeventLog) {}

  /** In minor order (the order `ls -U` would not promise, but stable). */
  list (): Zcdn[] { return [...this.nodes.values()].sort((a, b) => a.minor - b.minor) }
  node (name: string): Zcdn | undefined { return this.nodes.get(name) }

  /** zcdn_create_store: skip_spaces, at most 31 characters, strim; empty makes `zcrypt_MINOR`. */
  create (buf: string): void {
    const given = nodeName(buf)
    if (given !== '' && this.nodes.has(given)) fail('EEXIST', `zcrypt: a node named ${JSON.stringify(given)} exists`)
    let minor = 0
    const used = new Set([...this.nodes.values()].map(n => n.minor))
    while (minor < ZCRYPT_MAX_MINOR_NODES && used.has(minor)) minor++
    if (minor === ZCRYPT_MAX_MINOR_NODES) fail('ENOSPC', `zcrypt: all ${ZCRYPT_MAX_MINOR_NODES} minors are in use`)
    // dev_set_name: a '/' cannot be in a kobject name, the kernel makes it '!'.
    const name = given === '' ? `zcrypt_${minor}` : given.replaceAll('/', '!')
    if (name === '.' || name === '..') fail('EINVAL', `zcrypt: ${JSON.stringify(name)} cannot be a directory name`)
    if (this.nodes.has(name) || name === 'create' || name === 'destroy') {
      // device_add finds the directory (or the class link) taken.
      this.klog.log('err', `sysfs: cannot create duplicate filename '${this.nodes.has(name) ? devpath(name) : `/class/zcrypt/${name}`}'`)
      fail('EEXIST', `zcrypt: ${JSON.stringify(name)} is taken`)
    }
    const node: Zcdn = { name, minor, masks: { ioctlmask: new Mask(), apmask: new Mask(), aqmask: new Mask(), admask: new Mask() } }
    this.nodes.set(name, node)
    this.uevents.emit('add', devpath(name), 'zcrypt', devEnv(ZCRYPT_MAJOR, minor, name))
  }

  /** zcdn_destroy_store: the same name rules; ENOENT when no node has it. */
  destroy (buf: string): void {
    const name = nodeName(buf)
    const node = this.nodes.get(name)
    if (node === undefined) fail('ENOENT', `zcrypt: no node named ${JSON.stringify(name)}`)
    this.nodes.delete(name)
    this.uevents.emit('remove', devpath(name), 'zcrypt', devEnv(ZCRYPT_MAJOR, node.minor, name))
  }

  storeMask (node: Zcdn, which: ZcdnMaskName, buf: string): void {
    node.masks[which] = parseApMask(buf, node.masks[which], which)
  }

  state (): ZcdnState {
    return { nodes: this.list().map(n => ({ name: n.name, minor: n.minor, ...Object.fromEntries(MASKS.map(k => [k, n.masks[k].toHex()])) as Record<ZcdnMaskName, string> })) }
  }

  /** Replaces the nodes by a snapshot's (no uevents: a restore replays nothing). */
  restore (st: ZcdnState): void {
    this.nodes.clear()
    for (const n of st.nodes) {
      if (typeof n.name !== 'string' || !Number.isInteger(n.minor) || n.minor < 0 || n.minor >= ZCRYPT_MAX_MINOR_NODES) throw new Error(`zcdn: bad node ${JSON.stringify(n)}`)
      this.nodes.set(n.name, { name: n.name, minor: n.minor, masks: Object.fromEntries(MASKS.map(k => [k, hex2mask(n[k], k)])) as Record<ZcdnMaskName, Mask> })
    }
  }
}

/** The name a create/destroy buffer gives: what follows leading blanks, 31 characters at most, trailing blanks cut. */
function nodeName (buf: string): string {
  return cstr(buf).replace(/^[ \t\n\v\f\r]+/, '').slice(0, ZCDN_MAX_NAME - 1).replace(/[ \t\n\v\f\r]+$/, '')
}

const noShow = (): never => fail('EIO', 'zcrypt: create and destroy have no show method')

export interface ZcryptTrees { classZcrypt: DirNode, classMisc: DirNode, virtualZcrypt: DirNode, virtualMisc: DirNode }

/**
 * `/sys/class/zcrypt` (create, destroy, a link per node), `/sys/devices/virtual/zcrypt/NAME`,
 * and z90crypt under `class/misc` and `devices/virtual/misc`.
 */
export function zcryptTrees (zn: ZcryptNodes, power: PowerDirs, synth: (target: SynthTarget, buf: string) => void): ZcryptTrees {
  const maskAttr = (which: ZcdnMaskName, visible?: () => boolean): AttrDecl<Zcdn> => ({
    name: which,
    mode: 0o644,
    visible,
    show: n => `${n.masks[which].toHex()}\n`,
    store: (n, buf) => zn.storeMask(n, which, buf)
  })
  const nodeDir = new DirType<Zcdn>([
    maskAttr('ioctlmask'),
    maskAttr('apmask'),
    maskAttr('aqmask'),
    maskAttr('admask', () => zn.profile.zcdnAdmask),
    { name: 'dev', mode: 0o444, show: n => `${ZCRYPT_MAJOR}:${n.minor}\n` },
    {
      name: 'uevent',
      mode: 0o644,
      show: n => devEnv(ZCRYPT_MAJOR, n.minor, n.name).map(([k, v]) => `${k}=${v}\n`).join(''),
      store: (n, buf) => synth({ devpath: devpath(n.name), subsystem: 'zcrypt', env: devEnv(ZCRYPT_MAJOR, n.minor, n.name), device: `zcrypt ${n.name}` }, buf)
    },
    { name: 'subsystem', link: () => 'class/zcrypt' },
    { name: 'power', dir: n => power(devpath(n.name)) }
  ])

  const classZcrypt = new DirType<ZcryptNodes>([
    // 0600 without a show: class_attr_show answers a read with EIO.
    { name: 'create', mode: 0o600, show: noShow, store: (z, buf) => z.create(buf) },
    { name: 'destroy', mode: 0o600, show: noShow, store: (z, buf) => z.destroy(buf) },
    {
      kind: 'link',
      names: z => z.list().map(n => n.name),
      lookup: (z, name) => z.node(name) === undefined ? undefined : { kind: 'link', target: `devices/virtual/zcrypt/${name}` }
    }
  ]).instance(zn)

  const virtualZcrypt = new DirType<ZcryptNodes>([{
    kind: 'dir',
    names: z => z.list().map(n => n.name),
    lookup: (z, name) => { const n = z.node(name); return n === undefined ? undefined : nodeDir.instance(n) }
  }]).instance(zn)

  const z90 = devEnv(MISC_MAJOR, Z90CRYPT_MINOR, 'z90crypt')
  const z90path = '/devices/virtual/misc/z90crypt'
  const z90crypt = new DirType<null>([
    { name: 'dev', mode: 0o444, show: () => `${MISC_MAJOR}:${Z90CRYPT_MINOR}\n` },
    {
      name: 'uevent',
      mode: 0o644,
      show: () => z90.map(([k, v]) => `${k}=${v}\n`).join(''),
      store: (_c, buf) => synth({ devpath: z90path, subsystem: 'misc', env: z90, device: 'misc z90crypt' }, buf)
    },
    { name: 'subsystem', link: () => 'class/misc' },
    { name: 'power', dir: () => power(z90path) }
  ]).instance(null)
  const classMisc = new DirType<null>([{ name: 'z90crypt', link: () => 'devices/virtual/misc/z90crypt' }]).instance(null)
  const virtualMisc = new DirType<null>([{ name: 'z90crypt', dir: () => z90crypt }]).instance(null)

  return { classZcrypt, classMisc, virtualZcrypt, virtualMisc }
}
