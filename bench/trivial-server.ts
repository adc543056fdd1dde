/**
 * The baseline: the trivial fuse-native server of fuse.md §13, mounted with exactly apsim's
 * options (same `SysfsFuse` option injection, same `mountOptions()`, same timeouts), serving
 * fixed files from a Map with no model behind them. Whatever apsim costs above this is
 * apsim's own; what this costs is fuse-native + libfuse2 + the kernel.
 *
 *   node build/bench/trivial-server.js MNT CONFIG.json
 *
 * CONFIG: { files: { "/a/b/attr": "text", ... },
 *           bigdir?: { path, count }       a directory of `count` symlinks (as bus/ap/devices),
 *           tree?: { path, cards, cardFiles, queues, queueFiles, powerFiles } }
 *             a generated tree of the shape of devices/ap: card dirs with files, a power/ dir
 *             and queue dirs, each queue dir with files and a power/ dir.
 * Prints `mounted` once the mount is usable; SIGTERM/SIGINT unmount; exits with its parent.
 */
import { readFileSync } from 'node:fs'
import Fuse from 'fuse-native'
import { mountOptions, SysfsFuse } from '../daemon/fuse.js'

interface Config {
  files: Record<string, string>
  bigdir?: { path: string, count: number }
  tree?: { path: string, cards: number, cardFiles: number, queues: number, queueFiles: number, powerFiles: number }
}

const [mnt, configFile] = process.argv.slice(2)
const config = JSON.parse(readFileSync(configFile, 'utf8')) as Config

const time = new Date(0)
const st = (mode: number): Fuse.Stat => ({ mode, size: (mode & 0o170000) === 0o100000 ? 4096 : 0, uid: 0, gid: 0, nlink: 1, mtime: time, atime: time, ctime: time })
const DIR = st(0o40755)
const FILE = st(0o100644)
const LINK = st(0o120777)

const files = new Map<string, Buffer>()
const dirs = new Map<string, Map<string, Fuse.Stat>>([['/', new Map()]])
const addDir = (p: string): Map<string, Fuse.Stat> => {
  let d = dirs.get(p)
  if (d !== undefined) return d
  d = new Map()
  dirs.set(p, d)
  const i = p.lastIndexOf('/')
  addDir(i === 0 ? '/' : p.slice(0, i)).set(p.slice(i + 1), DIR)
  return d
}
for (const [p, text] of Object.entries(config.files)) {
  files.set(p, Buffer.from(text, 'latin1'))
  const i = p.lastIndexOf('/')
  addDir(i === 0 ? '/' : p.slice(0, i)).set(p.slice(i + 1), FILE)
}

// The big directory: names and stats built once, as a trivial server would.
const big = config.bigdir
let bigNames: string[] = []
let bigStats: Fuse.Stat[] = []
if (big !== undefined) {
  addDir(big.path)
  bigNames = Array.from({ length: big.count }, (_, i) => `e${i}`)
  bigStats = bigNames.map(() => LINK)
}

// The generated tree: resolved by parsing the path, nothing stored.
const tree = config.tree
if (tree !== undefined) {
  const i = tree.path.lastIndexOf('/')
  addDir(tree.path.slice(0, i) === '' ? '/' : tree.path.slice(0, i)).set(tree.path.slice(i + 1), DIR)
}
const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0')
function treeNode (rest: string[]): 'dir' | 'file' | undefined {
  const t = tree!
  const files = (name: string, n: number, prefix: string): boolean => name.startsWith(prefix) && Number(name.slice(1)) < n
  const powerAt = (k: number): 'dir' | 'file' | undefined => rest.length === k + 1 ? 'dir' : rest.length === k + 2 && files(rest[k + 1], t.powerFiles, 'p') ? 'file' : undefined
  if (rest.length === 0) return 'dir'
  const card = /^card([0-9a-f]{2})$/.exec(rest[0])
  if (card === null || parseInt(card[1], 16) >= t.cards) return undefined
  if (rest.length === 1) return 'dir'
  if (rest[1] === 'power') return powerAt(1)
  if (files(rest[1], t.cardFiles, 'a')) return rest.length === 2 ? 'file' : undefined
  const q = /^([0-9a-f]{2})\.([0-9a-f]{4})$/.exec(rest[1])
  if (q === null || q[1] !== card[1] || parseInt(q[2], 16) >= t.queues) return undefined
  if (rest.length === 2) return 'dir'
  if (rest[2] === 'power') return powerAt(2)
  return rest.length === 3 && files(rest[2], t.queueFiles, 'a') ? 'file' : undefined
}
function treeList (rest: string[]): [string[], Fuse.Stat[]] {
  const t = tree!
  const names: string[] = []
  const stats: Fuse.Stat[] = []
  const add = (n: string, s: Fuse.Stat): void => { names.push(n); stats.push(s) }
  if (rest.length === 0) for (let c = 0; c < t.cards; c++) add(`card${hex(c, 2)}`, DIR)
  else if (rest.at(-1) === 'power') for (let k = 0; k < t.powerFiles; k++) add(`p${k}`, FILE)
  else if (rest.length === 1) {
    for (let k = 0; k < t.cardFiles; k++) add(`a${k}`, FILE)
    add('power', DIR)
    for (let q = 0; q < t.queues; q++) add(`${rest[0].slice(4)}.${hex(q, 4)}`, DIR)
  } else {
    for (let k = 0; k < t.queueFiles; k++) add(`a${k}`, FILE)
    add('power', DIR)
  }
  return [names, stats]
}
const underTree = (p: string): string[] | undefined =>
  tree !== undefined && (p === tree.path || p.startsWith(tree.path + '/')) ? p.slice(tree.path.length).split('/').filter(x => x !== '') : undefined
const inBig = (p: string): boolean => big !== undefined && p.startsWith(big.path + '/') && /^e\d+$/.test(p.slice(big.path.length + 1)) && Number(p.slice(big.path.length + 2)) < big.count

const CONTENT = Buffer.from('0\n')

const ops: Fuse.Operations = {
  getattr: (p, cb) => {
    if (dirs.has(p)) return cb(0, DIR)
    if (files.has(p)) return cb(0, FILE)
    if (inBig(p)) return cb(0, LINK)
    const rest = underTree(p)
    const kind = rest === undefined ? undefined : treeNode(rest)
    if (kind !== undefined) return cb(0, kind === 'dir' ? DIR : FILE)
    cb(Fuse.ENOENT)
  },
  readdir: (p, cb) => {
    if (big !== undefined && p === big.path) return cb(0, bigNames, bigStats)
    const d = dirs.get(p)
    if (d !== undefined) return cb(0, [...d.keys()], [...d.values()])
    const rest = underTree(p)
    if (rest !== undefined && treeNode(rest) === 'dir') { const [n, s] = treeList(rest); return cb(0, n, s) }
    cb(Fuse.ENOENT)
  },
  readlink: (_p, cb) => cb(0, '../../devices/x'),
  open: (_p, _flags, cb) => cb(0, 1),
  release: (_p, _fd, cb) => cb(0),
  truncate: (_p, _size, cb) => cb(0),
  read: (p, _fd, buf, len, pos, cb) => {
    const val = files.get(p) ?? CONTENT
    cb(pos >= val.length ? 0 : val.copy(buf, 0, pos, pos + len))
  },
  write: (p, _fd, buf, len, _pos, cb) => {
    files.set(p, Buffer.from(buf.subarray(0, len)))
    cb(len)
  }
}

const fuse = new SysfsFuse(mnt, ops, mountOptions(), { mkdir: true, force: true, timeout: { default: 10000, write: false } })
fuse.mount(err => {
  if (err !== null && err !== undefined) { process.stderr.write(`trivial-server: ${err.message}\n`); process.exit(1) }
  process.stdout.write('mounted\n')
})
let stopping = false
const stop = (): void => {
  if (stopping) return
  stopping = true
  fuse.unmount(() => process.exit(0))
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
const parent = process.ppid
setInterval(() => { if (process.ppid !== parent) stop() }, 500).unref()
