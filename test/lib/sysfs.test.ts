/**
 * lib/sysfs.ts: the virtual sysfs layer. Declarations (DirType), path resolution, kernfs
 * relative links, and the open-file semantics of kernfs/sysfs (vfio-ap.md §1.3 permission
 * semantics and §2.11 read/write mechanics, §2.9 4095-byte cap): EACCES from open even for
 * root, per-open snapshots, reads capped at PAGE_SIZE - 1, one store per write(2) capped at
 * PAGE_SIZE, zero-length writes never reaching the store.
 */
import test, { type ExecutionContext } from 'ava'
import { SysfsError, type Errno } from '../../lib/errors.js'
import {
  type AttrDecl, DirType, type DirNode, O_RDONLY, O_RDWR, O_WRONLY, PAGE_SIZE, relativeLink, resolve, SHOW_MAX,
  splitPath, staticDir, type StoreRecord, Sysfs
} from '../../lib/sysfs.js'

// ---------------------------------------------------------------------------------------
// A small model with every kind of entry

interface Model {
  value: string
  shows: number
  stores: string[]
  big: string
  child?: Model
  hidden: boolean
  pending: Array<{ resolve: () => void, reject: (e: unknown) => void }>
}

const newModel = (): Model => ({ value: 'v0\n', shows: 0, stores: [], big: 'x'.repeat(5000), hidden: false, pending: [] })

const attrs: Array<AttrDecl<Model>> = [
  { name: 'rw', mode: 0o644, show: m => { m.shows++; return m.value }, store: (m, d) => { m.stores.push(d); m.value = d } },
  { name: 'ro', mode: 0o444, show: m => m.value },
  { name: 'wo', mode: 0o200, store: (m, d) => { m.stores.push(d) } },
  { name: 'rw_no_store', mode: 0o644, show: m => m.value },
  { name: 'rw_no_show', mode: 0o644, store: (m, d) => { m.stores.push(d) } },
  { name: 'ro_with_store', mode: 0o444, show: m => m.value, store: (m, d) => { m.stores.push(d) } },
  { name: 'wo_with_show', mode: 0o200, show: m => m.value, store: (m, d) => { m.stores.push(d) } },
  { name: 'no_bits', mode: 0o000, show: m => m.value, store: (m, d) => { m.stores.push(d) } },
  { name: 'root_only', mode: 0o400, show: m => m.value },
  { name: 'big', mode: 0o444, show: m => m.big },
  { name: 'big_limited', mode: 0o444, show: m => m.big, limit: 10 },
  { name: 'big_unlimited', mode: 0o400, show: m => m.big, limit: Number.MAX_SAFE_INTEGER },
  { name: 'latin1', mode: 0o644, show: () => '\xff\xe9\0\n', store: (m, d) => { m.stores.push(d) } },
  {
    name: 'fails',
    mode: 0o644,
    show: m => m.value,
    store: (m, d) => {
      if (d.startsWith('bad')) throw new SysfsError('EINVAL', `refusing ${JSON.stringify(d)}`)
      if (d.startsWith('boom')) throw new Error('not a SysfsError')
      m.value = d
    }
  },
  {
    name: 'blocks',
    mode: 0o200,
    store: (m, d) => new Promise<void>((resolve, reject) => { m.stores.push(d); m.pending.push({ resolve, reject }) })
  },
  { name: 'hidden', mode: 0o444, show: () => 'h\n', visible: m => !m.hidden }
]

const dirType: DirType<Model> = new DirType<Model>([
  ...attrs,
  { name: 'self', link: () => 'top/dev' },
  { name: 'maybe_link', link: m => m.hidden ? undefined : 'elsewhere/target' },
  { name: 'loop', link: () => 'top/dev/loop' },
  { name: 'child', dir: m => m.child === undefined ? undefined : dirType.instance(m.child) },
  {
    kind: 'attr',
    names: () => ['n0', 'n1'],
    lookup: (m, name) => /^n[01]$/.test(name) ? { kind: 'attr', mode: 0o444, show: () => `${name}:${m.value}` } : undefined
  }
])

function setup (onStore?: (r: StoreRecord) => void): { m: Model, fs: Sysfs, root: DirNode } {
  const m = newModel()
  m.child = newModel()
  const root = staticDir({ top: () => staticDir({ dev: () => dirType.instance(m) }) })
  return { m, fs: new Sysfs(root, onStore), root }
}

const D = 'top/dev'

function errnoOf (t: ExecutionContext, fn: () => unknown): Errno | undefined {
  return t.throws(fn, { instanceOf: SysfsError })?.code
}

// ---------------------------------------------------------------------------------------
// open(): EACCES matrix (kernfs_fop_open; binds root as well)

const openCase = test.macro({
  exec (t, file: string, flags: number, expected: Errno | 'ok') {
    const { fs } = setup()
    if (expected === 'ok') {
      const fh = fs.open(`${D}/${file}`, flags)
      t.true(fh > 0)
      fs.release(fh)
      t.is(fs.openHandles(), 0)
    } else {
      t.is(errnoOf(t, () => fs.open(`${D}/${file}`, flags)), expected)
      t.is(fs.openHandles(), 0, 'a refused open leaves no handle')
    }
  },
  title: (_p, file: string, flags: number, expected: Errno | 'ok') => `open ${file} ${['O_RDONLY', 'O_WRONLY', 'O_RDWR'][flags & 3]}${(flags & ~3) !== 0 ? ` | 0o${(flags & ~3).toString(8)}` : ''} -> ${expected}`
})

for (const [file, flags, expected] of [
  ['rw', O_RDONLY, 'ok'],
  ['rw', O_WRONLY, 'ok'],
  ['rw', O_RDWR, 'ok'],
  ['ro', O_RDONLY, 'ok'],
  ['ro', O_WRONLY, 'EACCES'],
  ['ro', O_RDWR, 'EACCES'],
  ['wo', O_RDONLY, 'EACCES'],
  ['wo', O_WRONLY, 'ok'],
  ['wo', O_RDWR, 'EACCES'],
  ['rw_no_store', O_RDONLY, 'ok'],
  ['rw_no_store', O_WRONLY, 'EACCES'],
  ['rw_no_show', O_RDONLY, 'EACCES'],
  ['rw_no_show', O_WRONLY, 'ok'],
  // the mode bits decide even when the routine exists ("even for root")
  ['ro_with_store', O_WRONLY, 'EACCES'],
  ['wo_with_show', O_RDONLY, 'EACCES'],
  ['no_bits', O_RDONLY, 'EACCES'],
  ['no_bits', O_WRONLY, 'EACCES'],
  ['root_only', O_RDONLY, 'ok'],
  ['root_only', O_WRONLY, 'EACCES'],
  // other flag bits (O_APPEND, O_TRUNC, ...) do not matter, only O_ACCMODE
  ['ro', O_RDONLY | 0o1000, 'ok'],
  ['wo', O_WRONLY | 0o2000 | 0o1000, 'ok'],
  ['ro', O_WRONLY | 0o1000, 'EACCES'],
  // not regular files
  ['', O_RDONLY, 'EISDIR'],
  ['child', O_RDONLY, 'EISDIR'],
  ['missing', O_RDONLY, 'ENOENT'],
  ['ro/x', O_RDONLY, 'ENOTDIR']
] as Array<[string, number, Errno | 'ok']>) test(openCase, file, flags, expected)

test('open: set entries and nested directories resolve like fixed ones', t => {
  const { fs } = setup()
  const fh = fs.open(`${D}/n1`, O_RDONLY)
  t.is(fs.read(fh, 0, 100).toString('latin1'), 'n1:v0\n')
  fs.release(fh)
  const fh2 = fs.open(`${D}/child/rw`, O_RDONLY)
  t.is(fs.read(fh2, 0, 100).toString('latin1'), 'v0\n')
  fs.release(fh2)
})

// ---------------------------------------------------------------------------------------
// read(): per-open snapshots (seq_file), the PAGE_SIZE - 1 cap

test('read: the text is generated at offset 0, later offsets read the same snapshot', t => {
  const { m, fs } = setup()
  m.value = 'abcdefgh\n'
  const fh = fs.open(`${D}/rw`, O_RDONLY)
  t.is(fs.read(fh, 0, 4).toString('latin1'), 'abcd')
  t.is(m.shows, 1)
  m.value = 'CHANGED-LONGER-TEXT\n'
  t.is(fs.read(fh, 4, 4).toString('latin1'), 'efgh', 'the rest comes from the snapshot')
  t.is(fs.read(fh, 8, 100).toString('latin1'), '\n')
  t.is(fs.read(fh, 9, 100).length, 0, 'end of file')
  t.is(fs.read(fh, 1000, 100).length, 0, 'beyond the end')
  t.is(m.shows, 1, 'show ran once for the whole read sequence')
  t.is(fs.read(fh, 0, 100).toString('latin1'), 'CHANGED-LONGER-TEXT\n', 'reading at 0 again regenerates')
  t.is(m.shows, 2)
  fs.release(fh)
})

test('read: snapshots belong to one open file', t => {
  const { m, fs } = setup()
  m.value = 'first\n'
  const a = fs.open(`${D}/rw`, O_RDONLY)
  const b = fs.open(`${D}/rw`, O_RDONLY)
  t.not(a, b)
  t.is(fs.read(a, 0, 2).toString('latin1'), 'fi')
  m.value = 'second\n'
  t.is(fs.read(b, 0, 2).toString('latin1'), 'se')
  t.is(fs.read(a, 2, 100).toString('latin1'), 'rst\n')
  t.is(fs.read(b, 2, 100).toString('latin1'), 'cond\n')
  t.is(fs.openHandles(), 2)
  fs.release(a)
  fs.release(b)
  t.is(fs.openHandles(), 0)
})

test('read: a first read at a non-zero offset generates the snapshot and skips', t => {
  const { m, fs } = setup()
  m.value = '0123456789\n'
  const fh = fs.open(`${D}/rw`, O_RDONLY)
  t.is(fs.read(fh, 5, 3).toString('latin1'), '567')
  m.value = 'zzzzzzzzzzzzzz\n'
  t.is(fs.read(fh, 8, 10).toString('latin1'), '89\n')
  fs.release(fh)
})

const capCase = test.macro({
  exec (t, file: string, expected: number) {
    const { fs } = setup()
    const fh = fs.open(`${D}/${file}`, O_RDONLY)
    let total = 0
    for (let pos = 0; ; pos += 1000) {
      const b = fs.read(fh, pos, 1000)
      if (b.length === 0) break
      total += b.length
    }
    t.is(total, expected)
    t.is(fs.read(fh, 0, 1 << 20).length, expected, 'one big read sees the same cap')
    fs.release(fh)
  },
  title: (_p, file: string, expected: number) => `read cap: 5000-byte show of ${file} reads ${expected} bytes`
})

test(capCase, 'big', 4095)
test(capCase, 'big_limited', 10)
test(capCase, 'big_unlimited', 5000)

test('read cap constants: PAGE_SIZE 4096, show text clamped to 4095', t => {
  t.is(PAGE_SIZE, 4096)
  t.is(SHOW_MAX, 4095)
})

test('read: text is latin1, one byte per character', t => {
  const { fs } = setup()
  const fh = fs.open(`${D}/latin1`, O_RDONLY)
  t.deepEqual([...fs.read(fh, 0, 10)], [0xff, 0xe9, 0x00, 0x0a])
  fs.release(fh)
})

test('read/write on a released or unknown handle: EINVAL', t => {
  const { fs } = setup()
  const fh = fs.open(`${D}/rw`, O_RDWR)
  fs.release(fh)
  t.is(errnoOf(t, () => fs.read(fh, 0, 10)), 'EINVAL')
  t.is(errnoOf(t, () => fs.write(fh, Buffer.from('x'))), 'EINVAL')
  t.is(errnoOf(t, () => fs.read(12345, 0, 10)), 'EINVAL')
})

test('read on a write-only handle of a readable file fails; write on a read-only handle of a writable file uses the store', t => {
  // The layer checks access at open; a handle opened for writing a file without show fails at read.
  const { fs } = setup()
  const fh = fs.open(`${D}/rw_no_show`, O_WRONLY)
  t.is(errnoOf(t, () => fs.read(fh, 0, 10)), 'EACCES')
  fs.release(fh)
  const fh2 = fs.open(`${D}/rw_no_store`, O_RDONLY)
  t.is(errnoOf(t, () => fs.write(fh2, Buffer.from('x'))), 'EACCES')
  fs.release(fh2)
})

// ---------------------------------------------------------------------------------------
// write(): one store per write(2), at most a page

const writeCase = test.macro({
  exec (t, length: number, expectedCount: number, expectedStores: number) {
    const records: StoreRecord[] = []
    const { m, fs } = setup(r => records.push(r))
    const fh = fs.open(`${D}/wo`, O_WRONLY)
    const data = Buffer.alloc(length, 0x61)
    t.is(fs.write(fh, data), expectedCount)
    t.is(m.stores.length, expectedStores)
    if (expectedStores > 0) {
      t.is(m.stores[0].length, expectedCount, 'the store sees the bytes it is credited with')
      t.deepEqual(records, [{ path: `${D}/wo`, data: 'a'.repeat(expectedCount), ok: true }])
    } else {
      t.deepEqual(records, [], 'no store, no record')
    }
    fs.release(fh)
  },
  title: (_p, length: number, expectedCount: number, expectedStores: number) => `write ${length} bytes -> returns ${expectedCount}, ${expectedStores} store(s)`
})

test(writeCase, 0, 0, 0)
test(writeCase, 1, 1, 1)
test(writeCase, 4095, 4095, 1)
test(writeCase, 4096, 4096, 1)
test(writeCase, 4097, 4096, 1)
test(writeCase, 10000, 4096, 1)

test('write: the store gets the bytes as latin1, NULs included (parsers cut at NUL, count is all)', t => {
  const { m, fs } = setup()
  const fh = fs.open(`${D}/latin1`, O_WRONLY)
  t.is(fs.write(fh, Buffer.from([0x35, 0x00, 0xff, 0x0a])), 4)
  t.deepEqual(m.stores, ['5\0\xff\n'])
  fs.release(fh)
})

test('write: each write(2) is its own store; the offset does not exist', t => {
  const { m, fs } = setup()
  const fh = fs.open(`${D}/rw`, O_RDWR)
  t.is(fs.write(fh, Buffer.from('one\n')), 4)
  t.is(fs.write(fh, Buffer.from('two\n')), 4)
  t.deepEqual(m.stores, ['one\n', 'two\n'])
  t.is(fs.read(fh, 0, 100).toString(), 'two\n')
  fs.release(fh)
})

test('write: a failed store reports its errno, leaves the state and is recorded', t => {
  const records: StoreRecord[] = []
  const { m, fs } = setup(r => records.push(r))
  const fh = fs.open(`${D}/fails`, O_RDWR)
  t.is(fs.write(fh, Buffer.from('good\n')), 5)
  const e = t.throws(() => fs.write(fh, Buffer.from('bad\n')), { instanceOf: SysfsError })
  t.is(e?.code, 'EINVAL')
  t.is(m.value, 'good\n', 'state unchanged')
  t.is(fs.read(fh, 0, 100).toString(), 'good\n')
  t.deepEqual(records, [
    { path: `${D}/fails`, data: 'good\n', ok: true },
    { path: `${D}/fails`, data: 'bad\n', ok: false, errno: 'EINVAL', why: 'refusing "bad\\n"' }
  ])
  // A non-SysfsError (a simulator bug) propagates unchanged and is recorded as EIO.
  t.throws(() => fs.write(fh, Buffer.from('boom')), { message: 'not a SysfsError' })
  t.is(records.length, 3)
  t.like(records[2], { path: `${D}/fails`, data: 'boom', ok: false, errno: 'EIO' })
  fs.release(fh)
})

test('write: a zero-length write returns 0 even on a store that would fail', t => {
  const records: StoreRecord[] = []
  const { fs } = setup(r => records.push(r))
  const fh = fs.open(`${D}/fails`, O_WRONLY)
  t.is(fs.write(fh, Buffer.alloc(0)), 0)
  t.deepEqual(records, [])
  fs.release(fh)
})

test('write: a blocking store returns a promise of the count', async t => {
  const records: StoreRecord[] = []
  const { m, fs } = setup(r => records.push(r))
  const fh = fs.open(`${D}/blocks`, O_WRONLY)
  const r = fs.write(fh, Buffer.from('1\n'))
  t.true(r instanceof Promise)
  t.deepEqual(m.stores, ['1\n'], 'the store ran at once')
  t.deepEqual(records, [], 'not recorded until it completes')
  let settled = false
  void (r as Promise<number>).then(() => { settled = true })
  await Promise.resolve()
  t.false(settled, 'still blocked')
  m.pending[0].resolve()
  t.is(await r, 2)
  t.deepEqual(records, [{ path: `${D}/blocks`, data: '1\n', ok: true }])
  fs.release(fh)
})

test('write: a blocking store that fails rejects with its errno', async t => {
  const records: StoreRecord[] = []
  const { m, fs } = setup(r => records.push(r))
  const fh = fs.open(`${D}/blocks`, O_WRONLY)
  const r = fs.write(fh, Buffer.from('1\n')) as Promise<number>
  m.pending[0].reject(new SysfsError('EINTR', 'interrupted'))
  const e = await t.throwsAsync(r, { instanceOf: SysfsError })
  t.is(e?.code, 'EINTR')
  t.deepEqual(records, [{ path: `${D}/blocks`, data: '1\n', ok: false, errno: 'EINTR', why: 'interrupted' }])
  fs.release(fh)
})

test('file handles are distinct while open and reused only after release', t => {
  const { fs } = setup()
  const seen = new Set<number>()
  const open: number[] = []
  for (let i = 0; i < 50; i++) {
    const fh = fs.open(`${D}/ro`, O_RDONLY)
    t.false(seen.has(fh))
    seen.add(fh)
    open.push(fh)
  }
  t.is(fs.openHandles(), 50)
  for (const fh of open) fs.release(fh)
  t.is(fs.openHandles(), 0)
  fs.release(open[0])
  t.is(fs.openHandles(), 0, 'releasing twice is harmless')
})

// ---------------------------------------------------------------------------------------
// stat, readdir, readlink, resolve

test('stat: directories, links and attributes (attributes report st_size 4096)', t => {
  const { fs } = setup()
  t.deepEqual(fs.stat(D), { kind: 'dir', mode: 0o40755, size: 0, nlink: 2 })
  t.deepEqual(fs.stat(`${D}/self`), { kind: 'link', mode: 0o120777, size: 0, nlink: 1 })
  t.deepEqual(fs.stat(`${D}/rw`), { kind: 'attr', mode: 0o100644, size: 4096, nlink: 1 })
  t.deepEqual(fs.stat(`${D}/wo`), { kind: 'attr', mode: 0o100200, size: 4096, nlink: 1 })
  t.deepEqual(fs.stat(`${D}/no_bits`), { kind: 'attr', mode: 0o100000, size: 4096, nlink: 1 })
  t.is(fs.stat(`${D}/big_limited`).size, 4096)
  t.is(fs.stat(`${D}/big_unlimited`).size, 0, 'files without the page limit (debugfs) report size 0')
  t.is(errnoOf(t, () => fs.stat(`${D}/nope`)), 'ENOENT')
})

test('readdir: declaration order, then the sets; hidden entries are absent everywhere', t => {
  const { m, fs } = setup()
  const names = fs.readdir(D).map(e => e.name)
  t.deepEqual(names, [...attrs.map(a => a.name), 'self', 'maybe_link', 'loop', 'child', 'n0', 'n1'])
  t.deepEqual(fs.readdir(D).find(e => e.name === 'child'), { name: 'child', kind: 'dir' })
  t.deepEqual(fs.readdir(D).find(e => e.name === 'self'), { name: 'self', kind: 'link' })
  t.deepEqual(fs.readdir(D).find(e => e.name === 'n0'), { name: 'n0', kind: 'attr' })
  m.hidden = true
  m.child = undefined
  const after = fs.readdir(D).map(e => e.name)
  t.false(after.includes('hidden'))
  t.false(after.includes('maybe_link'))
  t.false(after.includes('child'))
  t.is(errnoOf(t, () => fs.stat(`${D}/hidden`)), 'ENOENT')
  t.is(errnoOf(t, () => fs.open(`${D}/hidden`, O_RDONLY)), 'ENOENT')
  t.is(errnoOf(t, () => fs.readlink(`${D}/maybe_link`)), 'ENOENT')
  t.is(errnoOf(t, () => fs.readdir(`${D}/child`)), 'ENOENT')
  t.is(errnoOf(t, () => fs.readdir(`${D}/rw`)), 'ENOTDIR')
})

test('readlink: relative text computed from the link path; EINVAL on a non-link', t => {
  const { fs } = setup()
  t.is(fs.readlink(`${D}/self`), '../dev')
  t.is(fs.readlink(`${D}/maybe_link`), '../../elsewhere/target')
  t.is(errnoOf(t, () => fs.readlink(`${D}/rw`)), 'EINVAL')
  t.is(errnoOf(t, () => fs.readlink(D)), 'EINVAL')
})

const resolveCase = test.macro({
  exec (t, path: string, expected: 'dir' | 'attr' | 'link' | Errno) {
    const { root } = setup()
    if (expected === 'dir' || expected === 'attr' || expected === 'link') t.is(resolve(root, path).kind, expected)
    else t.is(errnoOf(t, () => resolve(root, path)), expected)
  },
  title: (_p, path: string, expected: string) => `resolve ${JSON.stringify(path)} -> ${expected}`
})

for (const [path, expected] of [
  ['', 'dir'],
  ['/', 'dir'],
  ['top', 'dir'],
  ['/top/dev/', 'dir'],
  ['top//dev', 'dir'],
  ['./top/./dev', 'dir'],
  ['top/dev/rw', 'attr'],
  ['top/dev/self', 'link'],
  ['top/dev/child/n0', 'attr'],
  ['top/dev/nope', 'ENOENT'],
  ['nope/dev', 'ENOENT'],
  ['top/dev/n2', 'ENOENT'],
  ['top/dev/rw/x', 'ENOTDIR'],
  // '..' goes up (and stays at the root), links in the middle of a path are followed as the VFS does
  ['top/dev/..', 'dir'],
  ['top/../top/dev/rw', 'attr'],
  ['..', 'dir'],
  ['top/../../top', 'dir'],
  ['top/dev/self/rw', 'attr'],
  ['top/dev/self/self/self/child/rw', 'attr'],
  ['top/dev/maybe_link/x', 'ENOENT'],
  ['top/dev/loop/x', 'ELOOP'],
  // the last component is not followed by resolve itself
  ['top/dev/loop', 'link'],
  ['top/dev/maybe_link', 'link']
] as Array<[string, 'dir' | 'attr' | 'link' | Errno]>) test(resolveCase, path, expected)

test('resolve(…, followLast) follows a final link like open(2)', t => {
  const { root } = setup()
  t.is(resolve(root, `${D}/self`, true).kind, 'dir')
  t.is(resolve(root, `${D}/self`).kind, 'link')
  t.is(errnoOf(t, () => resolve(root, `${D}/maybe_link`, true)), 'ENOENT')
  t.is(errnoOf(t, () => resolve(root, `${D}/loop`, true)), 'ELOOP')
})

test('open follows links to the attribute; a link to a directory is EISDIR', t => {
  const { m, fs } = setup()
  m.value = 'via link\n'
  const fh = fs.open(`${D}/self/rw`, O_RDONLY)
  t.is(fs.read(fh, 0, 100).toString(), 'via link\n')
  fs.release(fh)
  t.is(errnoOf(t, () => fs.open(`${D}/self`, O_RDONLY)), 'EISDIR')
  t.is(errnoOf(t, () => fs.open(`${D}/maybe_link`, O_RDONLY)), 'ENOENT')
  t.is(errnoOf(t, () => fs.open(`${D}/loop`, O_RDONLY)), 'ELOOP')
  t.is(fs.openHandles(), 0)
})

test('splitPath drops empty and "." components', t => {
  t.deepEqual(splitPath('/a//b/./c/'), ['a', 'b', 'c'])
  t.deepEqual(splitPath(''), [])
  t.deepEqual(splitPath('a/../b'), ['a', '..', 'b'])
})

test('DirType: a duplicate entry name is a declaration error', t => {
  t.throws(() => new DirType<null>([{ name: 'x', mode: 0o444, show: () => '' }, { name: 'x', link: () => 'y' }]), { message: /duplicate sysfs entry x/ })
})

test('attribute nodes call show/store with the instance they belong to', t => {
  const { m, fs } = setup()
  const fh = fs.open(`${D}/child/rw`, O_WRONLY)
  fs.write(fh, Buffer.from('to child\n'))
  fs.release(fh)
  t.deepEqual(m.child?.stores, ['to child\n'])
  t.deepEqual(m.stores, [])
})

// ---------------------------------------------------------------------------------------
// relativeLink: what kernfs writes (up to the nearest common ancestor, then down)

const linkCase = test.macro({
  exec (t, linkPath: string, target: string, expected: string) {
    t.is(relativeLink(linkPath, target), expected)
    t.is(relativeLink(`/${linkPath}`, `/${target}/`), expected, 'leading and trailing slashes do not matter')
  },
  title: (_p, linkPath: string, _target: string, expected: string) => `relativeLink ${linkPath} -> ${expected}`
})

const U = '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f'
for (const [linkPath, target, expected] of [
  // ap-bus.md §3.1
  ['bus/ap/devices/card03', 'devices/ap/card03', '../../../devices/ap/card03'],
  ['bus/ap/devices/03.0004', 'devices/ap/card03/03.0004', '../../../devices/ap/card03/03.0004'],
  ['devices/ap/card03/subsystem', 'bus/ap', '../../../bus/ap'],
  ['devices/ap/card03/03.0004/subsystem', 'bus/ap', '../../../../bus/ap'],
  ['devices/ap/card03/driver', 'bus/ap/drivers/cex4card', '../../../bus/ap/drivers/cex4card'],
  ['devices/ap/card03/03.0004/driver', 'bus/ap/drivers/vfio_ap', '../../../../bus/ap/drivers/vfio_ap'],
  ['bus/ap/drivers/cex4queue/03.0004', 'devices/ap/card03/03.0004', '../../../../devices/ap/card03/03.0004'],
  ['bus/ap/drivers/vfio_ap/module', 'module/vfio_ap', '../../../../module/vfio_ap'],
  ['module/vfio_ap/drivers/ap:vfio_ap', 'bus/ap/drivers/vfio_ap', '../../../bus/ap/drivers/vfio_ap'],
  // vfio-ap.md §1.2, §1.3, §2.1
  [`devices/vfio_ap/matrix/${U}/mdev_type`, 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough', '../mdev_supported_types/vfio_ap-passthrough'],
  [`devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/devices/${U}`, `devices/vfio_ap/matrix/${U}`, `../../../${U}`],
  ['class/mdev_bus/matrix', 'devices/vfio_ap/matrix', '../../devices/vfio_ap/matrix'],
  ['devices/vfio_ap/matrix/driver', 'bus/matrix/drivers/vfio_ap', '../../../bus/matrix/drivers/vfio_ap'],
  ['devices/vfio_ap/matrix/subsystem', 'bus/matrix', '../../../bus/matrix'],
  ['bus/matrix/devices/matrix', 'devices/vfio_ap/matrix', '../../../devices/vfio_ap/matrix'],
  [`bus/mdev/devices/${U}`, `devices/vfio_ap/matrix/${U}`, `../../../devices/vfio_ap/matrix/${U}`],
  [`devices/vfio_ap/matrix/${U}/driver`, 'bus/mdev/drivers/vfio_ap_mdev', '../../../../bus/mdev/drivers/vfio_ap_mdev'],
  [`devices/vfio_ap/matrix/${U}/iommu_group`, 'kernel/iommu_groups/0', '../../../../kernel/iommu_groups/0'],
  // shapes: sibling, a link to its own directory, to an ancestor, to a descendant of its directory
  ['a/b/link', 'a/b/target', 'target'],
  ['a/b/link', 'a/b', '../b'],
  ['a/b/c/link', 'a', '../../../a'],
  ['a/link', 'a/b/c', 'b/c'],
  ['link', 'x/y', 'x/y']
] as Array<[string, string, string]>) test(linkCase, linkPath, target, expected)
