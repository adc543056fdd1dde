/**
 * The virtual sysfs layer: directories, attributes and links resolved from the model on
 * demand, and the open-file semantics of kernfs (per-open snapshots, one store per write(2),
 * permission checks that bind root too). Pure and synchronous; the FUSE adapter only maps
 * operations onto `Sysfs`.
 */
import { fail, isSysfsError, SysfsError, type Errno } from './errors.js'
import type { Faults, Injection } from './faults.js'

export type Kind = 'dir' | 'attr' | 'link'

/** A store either completes at once or, like a blocking kernel store, when its promise settles. */
export type StoreResult = void | Promise<void>

export interface AttrNode {
  kind: 'attr'
  mode: number
  show?: () => string
  store?: (data: string) => StoreResult
  /** Largest text a read returns; sysfs clamps to PAGE_SIZE - 1, debugfs does not. */
  limit?: number
  /**
   * Which attribute of which object this is (the declaration and the model object it was
   * made for): nodes are made afresh on every lookup, so an open file recognises its
   * attribute by these. Absent for nodes that have no such identity.
   */
  decl?: unknown
  owner?: unknown
}
/** `target` is a path from the tree root without the leading slash, e.g. `devices/ap/card04`. */
export interface LinkNode { kind: 'link', target: string }
export interface DirNode {
  kind: 'dir'
  /** 0755 unless given (debugfs directories are 0700). */
  mode?: number
  entries: () => DirEntry[]
  lookup: (name: string) => Node | undefined
}
export type Node = AttrNode | LinkNode | DirNode
export interface DirEntry { name: string, kind: Kind }

// ---------------------------------------------------------------------------------------
// Declarations: each model declares the entries of its directory once, as a table.

export interface AttrDecl<C> {
  name: string
  mode: number
  show?: (c: C) => string
  store?: (c: C, data: string) => StoreResult
  limit?: number
  /** Absent when this returns false (e.g. zcrypt attributes of an unbound queue). */
  visible?: (c: C) => boolean
}
export interface LinkDecl<C> { name: string, link: (c: C) => string | undefined }
export interface SubdirDecl<C> { name: string, dir: (c: C) => DirNode | undefined }
/** A family of entries named by the model (cards of the bus, mdevs of the matrix, ...). */
export interface SetDecl<C> {
  kind: Kind
  names: (c: C) => Iterable<string>
  lookup: (c: C, name: string) => Node | undefined
}
export type EntryDecl<C> = AttrDecl<C> | LinkDecl<C> | SubdirDecl<C> | SetDecl<C>

const isSet = <C>(d: EntryDecl<C>): d is SetDecl<C> => 'names' in d
const isLink = <C>(d: EntryDecl<C>): d is LinkDecl<C> => 'link' in d
const isSubdir = <C>(d: EntryDecl<C>): d is SubdirDecl<C> => 'dir' in d

export function attrNode<C> (d: AttrDecl<C>, c: C): AttrNode {
  const { show, store } = d
  return {
    kind: 'attr',
    mode: d.mode,
    limit: d.limit,
    show: show && (() => show(c)),
    store: store && ((data: string) => store(c, data)),
    decl: d,
    owner: c
  }
}

export class DirType<C> {
  private readonly fixed = new Map<string, AttrDecl<C> | LinkDecl<C> | SubdirDecl<C>>()
  private readonly order: Array<AttrDecl<C> | LinkDecl<C> | SubdirDecl<C>> = []
  private readonly sets: Array<SetDecl<C>> = []

  constructor (decls: Array<EntryDecl<C>>) {
    for (const d of decls) {
      if (isSet(d)) { this.sets.push(d); continue }
      if (this.fixed.has(d.name)) throw new Error(`duplicate sysfs entry ${d.name}`)
      this.fixed.set(d.name, d)
      this.order.push(d)
    }
  }

  private node (d: AttrDecl<C> | LinkDecl<C> | SubdirDecl<C>, c: C): Node | undefined {
    if (isLink(d)) {
      const target = d.link(c)
      return target === undefined ? undefined : { kind: 'link', target }
    }
    if (isSubdir(d)) return d.dir(c)
    if (d.visible !== undefined && !d.visible(c)) return undefined
    return attrNode(d, c)
  }

  /** What `node` would give, without building attribute nodes: a listing needs only names and kinds. */
  private kindOf (d: AttrDecl<C> | LinkDecl<C> | SubdirDecl<C>, c: C): Kind | undefined {
    if (isLink(d)) return d.link(c) === undefined ? undefined : 'link'
    if (isSubdir(d)) return d.dir(c)?.kind
    return d.visible !== undefined && !d.visible(c) ? undefined : 'attr'
  }

  instance (c: C): DirNode {
    return {
      kind: 'dir',
      lookup: (name: string) => {
        const d = this.fixed.get(name)
        if (d !== undefined) return this.node(d, c)
        for (const s of this.sets) {
          const n = s.lookup(c, name)
          if (n !== undefined) return n
        }
        return undefined
      },
      entries: () => {
        const out: DirEntry[] = []
        for (const d of this.order) {
          const kind = this.kindOf(d, c)
          if (kind !== undefined) out.push({ name: d.name, kind })
        }
        for (const s of this.sets) for (const name of s.names(c)) out.push({ name, kind: s.kind })
        return out
      }
    }
  }
}

/** A directory with only the named entries, for plumbing directories. */
export function staticDir (entries: Record<string, () => Node | undefined>): DirNode {
  return new DirType<null>(Object.entries(entries).map(([name, make]) => ({ name, dir: () => make() as DirNode | undefined })))
    .instance(null)
}

// ---------------------------------------------------------------------------------------
// Paths

export function splitPath (path: string): string[] {
  return path.split('/').filter(p => p !== '' && p !== '.')
}

/**
 * Walks `path` from `root`, following links in the middle of the path as the VFS does (and
 * the last component too when `followLast`). ENOENT for a missing component, ENOTDIR through
 * a non-directory, ELOOP after 40 links.
 */
export function resolve (root: DirNode, path: string, followLast = false): Node {
  let parts = splitPath(path)
  let node: Node = root
  let trail: string[] = []
  let links = 0
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]
    if (node.kind !== 'dir') fail('ENOTDIR', `${path}: ${part} is below a non-directory`)
    if (part === '..') {
      trail = trail.slice(0, -1)
      node = resolve(root, trail.join('/'))
      continue
    }
    const next: Node | undefined = node.lookup(part)
    if (next === undefined) fail('ENOENT', `${path}: no such entry`)
    if (next.kind === 'link' && (i < parts.length - 1 || followLast)) {
      if (++links > 40) fail('ELOOP', `${path}: too many levels of links`)
      parts = [...splitPath(next.target), ...parts.slice(i + 1)]
      i = -1
      node = root
      trail = []
      continue
    }
    trail.push(part)
    node = next
  }
  return node
}

/**
 * The relative link text kernfs writes: up from the link's directory to the nearest
 * directory that is also an ancestor of the target, then down to the target.
 */
export function relativeLink (linkPath: string, target: string): string {
  const from = splitPath(linkPath).slice(0, -1)
  const to = splitPath(target)
  const toParent = to.slice(0, -1)
  let common = 0
  while (common < from.length && common < toParent.length && from[common] === toParent[common]) common++
  return '../'.repeat(from.length - common) + to.slice(common).join('/')
}

// ---------------------------------------------------------------------------------------
// Open files

export const PAGE_SIZE = 4096
/** sysfs clamps what a show routine returns to PAGE_SIZE - 1 bytes. */
export const SHOW_MAX = PAGE_SIZE - 1

export const O_ACCMODE = 3
export const O_RDONLY = 0
export const O_WRONLY = 1
export const O_RDWR = 2

export interface Stat { kind: Kind, mode: number, size: number, nlink: number }

/** One store as the log records it; `injected` names the fault rule that made it fail. */
export interface StoreRecord { path: string, data: string, ok: boolean, errno?: Errno, why?: string, injected?: number }

interface Handle { path: string, node: AttrNode, snap: Buffer | undefined }

/**
 * Makes each store durable before its write(2) is acknowledged (the daemon's `--state`). A
 * store whose save fails fails with the save's errno and is undone, as if it had been refused.
 */
export interface Persist {
  /** Saves the host as the store left it; throws a SysfsError (ENOSPC, EIO, ...) if it cannot. */
  save: () => void
  /** Puts the host back as it was at the last successful save. */
  rollback: () => void
}

/**
 * The file-level behaviour of kernfs over a tree. Each method is one filesystem operation
 * and throws SysfsError with the errno the caller must see.
 */
export class Sysfs {
  private readonly handles = new Map<number, Handle>()
  private nextFh = 1

  constructor (readonly root: DirNode, private readonly onStore?: (r: StoreRecord) => void, private readonly faults?: Faults, private readonly persist?: Persist) {}

  private injectedError (inj: Injection): SysfsError {
    return new SysfsError(inj.errno ?? 'EIO', `injected by fault rule ${inj.rule}`)
  }

  resolve (path: string): Node { return resolve(this.root, path) }

  /** Like open(2) on a path: links are followed to the attribute. */
  private resolveFollow (path: string): Node { return resolve(this.root, path, true) }

  stat (path: string): Stat {
    const n = this.resolve(path)
    switch (n.kind) {
      case 'dir': return { kind: 'dir', mode: 0o40000 | (n.mode ?? 0o755), size: 0, nlink: 2 }
      case 'link': return { kind: 'link', mode: 0o120777, size: 0, nlink: 1 }
      // debugfs files (no page limit) report size 0, sysfs attributes a page
      case 'attr': return { kind: 'attr', mode: 0o100000 | n.mode, size: (n.limit ?? SHOW_MAX) > PAGE_SIZE ? 0 : PAGE_SIZE, nlink: 1 }
    }
  }

  readdir (path: string): DirEntry[] {
    const n = this.resolve(path)
    if (n.kind !== 'dir') fail('ENOTDIR', `${path} is not a directory`)
    return n.entries()
  }

  readlink (path: string): string {
    const n = this.resolve(path)
    if (n.kind !== 'link') fail('EINVAL', `${path} is not a link`)
    return relativeLink(path, n.target)
  }

  /** kernfs_fop_open: the mode bits and the presence of show/store bind root as well. */
  open (path: string, flags: number): number {
    const n = this.resolveFollow(path)
    const inj = this.faults?.check('open', path)
    if (inj?.errno !== undefined) throw this.injectedError(inj)
    if (n.kind === 'dir') fail('EISDIR', `${path} is a directory`)
    if (n.kind !== 'attr') fail('ENOENT', `${path}: dangling`)
    const acc = flags & O_ACCMODE
    if ((acc === O_RDONLY || acc === O_RDWR) && ((n.mode & 0o444) === 0 || n.show === undefined)) fail('EACCES', `${path} is not readable`)
    if ((acc === O_WRONLY || acc === O_RDWR) && ((n.mode & 0o222) === 0 || n.store === undefined)) fail('EACCES', `${path} is not writable`)
    let fh = this.nextFh
    while (this.handles.has(fh)) fh = fh >= 0xffffffff ? 1 : fh + 1
    this.nextFh = fh >= 0xffffffff ? 1 : fh + 1
    this.handles.set(fh, { path, node: n, snap: undefined })
    return fh
  }

  private handle (fh: number): Handle {
    const h = this.handles.get(fh)
    if (h === undefined) fail('EINVAL', `bad file handle ${fh}`)
    return h
  }

  /**
   * kernfs_get_active: an open file whose attribute went away (its mdev or queue removed, a
   * driver attribute gone with the binding, the whole host restored) fails reads that reach
   * the show routine and every write with ENODEV, even if a new attribute of the same name
   * appeared meanwhile (fs/kernfs/file.c kernfs_fop_write_iter, kernfs_seq_start).
   */
  private removed (h: Handle): boolean {
    let n: Node
    try { n = this.resolveFollow(h.path) } catch { return true }
    if (n.kind !== 'attr') return true
    return h.node.decl !== undefined && (n.decl !== h.node.decl || n.owner !== h.node.owner)
  }

  /** Like seq_file: the text is generated at offset 0 and later reads see that snapshot. */
  read (fh: number, pos: number, len: number): Buffer {
    const h = this.handle(fh)
    if (pos === 0 || h.snap === undefined) {
      const show = h.node.show
      if (show === undefined) fail('EACCES', `${h.path} is not readable`)
      if (this.removed(h)) fail('ENODEV', `${h.path} was removed while open`)
      const inj = this.faults?.check('read', h.path)
      if (inj?.errno !== undefined) throw this.injectedError(inj)
      const text = Buffer.from(show(), 'latin1')
      const limit = h.node.limit ?? SHOW_MAX
      h.snap = text.length > limit ? text.subarray(0, limit) : text
    }
    if (pos >= h.snap.length) return Buffer.alloc(0)
    return h.snap.subarray(pos, Math.min(h.snap.length, pos + len))
  }

  /**
   * One write(2) is one store of at most a page; the offset does not matter. A store that
   * blocks in the kernel (mdev `remove` of a device a guest holds) returns a promise.
   */
  write (fh: number, data: Buffer): number | Promise<number> {
    const h = this.handle(fh)
    const store = h.node.store
    if (store === undefined) fail('EACCES', `${h.path} is not writable`)
    const count = Math.min(data.length, PAGE_SIZE)
    if (count === 0) return 0
    if (this.removed(h)) fail('ENODEV', `${h.path} was removed while open`)
    const text = data.toString('latin1', 0, count)
    const inj = this.faults?.check('write', h.path, text)
    const done = (e?: unknown): void => {
      if (e === undefined) this.onStore?.({ path: h.path, data: text, ok: true })
      else if (isSysfsError(e)) this.onStore?.({ path: h.path, data: text, ok: false, errno: e.code, why: e.why })
      else this.onStore?.({ path: h.path, data: text, ok: false, errno: 'EIO', why: `model error: ${String(e)}` })
    }
    const run = (): number | Promise<number> => {
      if (inj?.errno !== undefined) {
        const e = this.injectedError(inj)
        this.onStore?.({ path: h.path, data: text, ok: false, errno: e.code, why: e.why, injected: inj.rule })
        throw e
      }
      return this.runStore(store, text, count, done)
    }
    const sleep = this.faults?.sleep
    if (inj?.delayMs !== undefined && sleep !== undefined) return sleep(inj.delayMs).then(run)
    return run()
  }

  private runStore (store: (data: string) => StoreResult, text: string, count: number, done: (e?: unknown) => void): number | Promise<number> {
    // With a persist hook: the open files whose attribute exists before the store, to bring
    // back to life if the store is undone (the model objects behind them are rebuilt).
    const live = this.persist === undefined ? undefined : this.liveHandles()
    const commit = (): number => {
      try {
        if (live !== undefined) this.commit(live)
      } catch (e) {
        done(e)
        throw e
      }
      done()
      return count
    }
    let result: StoreResult
    try {
      result = store(text)
    } catch (e) {
      done(e)
      throw e
    }
    if (result === undefined) return commit()
    return result.then(commit, (e: unknown) => { done(e); throw e })
  }

  private liveHandles (): Map<number, Handle> {
    const live = new Map<number, Handle>()
    for (const [fh, h] of this.handles) if (!this.removed(h)) live.set(fh, h)
    return live
  }

  /**
   * Saves; if the save fails, undoes the store and points the files that were open on a live
   * attribute at the attribute now at their path (the model is rebuilt as it was before the
   * store: in the kernel's terms the store never happened, so nothing was removed). Files opened while a blocking store waited are
   * not among them: after an undone blocking store they read ENODEV.
   */
  private commit (live: Map<number, Handle>): void {
    try {
      this.persist!.save()
    } catch (e) {
      this.persist!.rollback()
      for (const [fh, h] of live) {
        if (this.handles.get(fh) !== h) continue
        let n: Node
        try { n = this.resolveFollow(h.path) } catch { continue }
        if (n.kind === 'attr') h.node = n
      }
      throw e
    }
  }

  release (fh: number): void { this.handles.delete(fh) }

  openHandles (): number { return this.handles.size }
}
