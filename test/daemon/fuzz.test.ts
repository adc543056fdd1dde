/**
 * Fuzzing through the mount: every writable file of a populated host (found with
 * `find -perm /222`, the control files under kernel/debug/apsim and the files of a created
 * mdev included) gets random write(2)s from test/helpers/fuzz-writer.py for a fixed time:
 * random bytes, NULs, buffers of 4095/4096/4097 bytes and 1 MiB, O_APPEND, several writes
 * per open, Python loops with odd chunk sizes, dd with odd block sizes; `restore` gets junk
 * paths. Checked:
 *
 *   - the daemon never crashes or hangs: a heartbeat read every second is answered, the
 *     writer finishes in time, the daemon process is alive at the end;
 *   - every write(2) succeeds with min(len, 4096) bytes (kernfs), or fails with an errno of
 *     the file's documented set (test/helpers/errnos.ts), or its open fails with ENOENT
 *     (a file that went away: a removed mdev, a driver attribute of an unbound device), or
 *     it fails with ENODEV after an earlier write of the same open removed the file;
 *   - afterwards the tree is the model: `kernel/debug/apsim/state` restored into an
 *     in-process Host.fromState reads the same as the mount, file by file and link by link.
 *
 * APSIM_FUZZ_SEED reproduces a run (the seed is printed), APSIM_FUZZ_SECONDS sets the time.
 */
import test from 'ava'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Errno } from '../../lib/errors.js'
import { isSysfsError } from '../../lib/errors.js'
import { Host, type HostState } from '../../lib/host.js'
import { NEWEST } from '../../lib/profiles.js'
import { type Node, relativeLink } from '../../lib/sysfs.js'
import { spawn } from 'node:child_process'
import { mountHost, run } from '../helpers/mount.js'
import { storeErrnos } from '../helpers/errnos.js'
import { STRERROR } from '../helpers/shell.js'

const WRITER = fileURLToPath(new URL('../../../test/helpers/fuzz-writer.py', import.meta.url))
const SEED = process.env.APSIM_FUZZ_SEED !== undefined ? Number(process.env.APSIM_FUZZ_SEED) : Date.now() % 1000000007
const SECONDS = Number(process.env.APSIM_FUZZ_SECONDS ?? 35)

const U1 = '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f'
const U2 = '4a7e2b91-c6d3-4f58-9a0b-1c2d3e4f5a6b'
const M = 'devices/vfio_ap/matrix'

interface Rec { i: number, path: string, how: string, len: number, res: Array<[number, number | string]>, ms: number }

/** Every readable attribute, link and directory listing of a tree (not the control tree), in-process. */
function walk (root: Node): Map<string, string> {
  const out = new Map<string, string>()
  const go = (node: Node, path: string): void => {
    if (path === 'kernel/debug') return
    if (node.kind === 'link') { out.set(path, `-> ${relativeLink(path, node.target)}`); return }
    if (node.kind === 'attr') {
      if ((node.mode & 0o444) !== 0) {
        try { out.set(path, (node.show?.() ?? '').slice(0, node.limit ?? 4095)) } catch (e) { out.set(path, `(error ${isSysfsError(e) ? STRERROR[e.code] : String(e)})`) }
      }
      return
    }
    const entries = node.entries()
    out.set(`${path}/`, entries.map(e => e.name).sort().join(' '))
    for (const e of entries) {
      const n = node.lookup(e.name)
      if (n !== undefined) go(n, path === '' ? e.name : `${path}/${e.name}`)
    }
  }
  go(root, '')
  return out
}

/** The same map read through the mount by one python process (content capped at 4095 like sysfs). */
const READ_ALL = String.raw`
import json, os, sys
root = sys.argv[1]
out = {}
for dirpath, dirnames, filenames in os.walk(root):
    rel = os.path.relpath(dirpath, root)
    rel = "" if rel == "." else rel
    if rel == "kernel/debug":
        dirnames[:] = []
        continue
    names = sorted(dirnames + filenames)
    out[rel + "/"] = " ".join(names)
    for n in dirnames + filenames:
        p = os.path.join(dirpath, n)
        key = (rel + "/" + n) if rel else n
        if os.path.islink(p):
            out[key] = "-> " + os.readlink(p)
            if n in dirnames:
                dirnames.remove(n)
            continue
        if n in dirnames:
            continue
        if not (os.lstat(p).st_mode & 0o444):
            continue
        try:
            with open(p, "rb") as f:
                out[key] = f.read().decode("latin1")
        except OSError as e:
            out[key] = "(error %s)" % e.strerror
json.dump(out, sys.stdout)
`

/** Runs a command for at most `ms`; on the deadline it is killed (by its pid) and `timedOut` is set. */
async function runFor (cmd: string, args: string[], ms: number): Promise<{ code: number | null, stdout: string, stderr: string, timedOut: boolean }> {
  return await new Promise(resolve => {
    const child = spawn(cmd, args, { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL') }, ms)
    child.on('close', code => { clearTimeout(timer); resolve({ code, stdout, stderr, timedOut }) })
  })
}

const totals = { writes: 0, refused: 0, crashes: 0, hangs: 0, unexpected: 0 }

test('random writes to every writable file: documented errnos only, the daemon stays up, the tree stays the model', async t => {
  t.timeout((SECONDS + 90) * 1000)
  const m = await mountHost()
  try {
    // A populated host: adapters 5 and 6 for vfio_ap, two mdevs with a matrix each.
    const setup = await m.sh([
      'echo -5,-6 > bus/ap/apmask',
      `echo ${U1} > ${M}/mdev_supported_types/vfio_ap-passthrough/create`,
      `echo ${U2} > ${M}/mdev_supported_types/vfio_ap-passthrough/create`,
      `for a in 5 6; do echo $a > ${M}/${U1}/assign_adapter; done`,
      `echo 4 > ${M}/${U1}/assign_domain; echo 0xab > ${M}/${U1}/assign_domain; echo 4 > ${M}/${U1}/assign_control_domain`,
      `echo 5 > ${M}/${U2}/assign_adapter; echo 0x47 > ${M}/${U2}/assign_domain`
    ].join(' && '))
    t.is(setup.code, 0, setup.stderr)

    const found = await m.sh("find . -xdev -type f -perm /222 -printf '%P\\n' | sort")
    t.is(found.code, 0, found.stderr)
    const files = found.stdout.split('\n').filter(f => f !== '')
    for (const must of ['bus/ap/apmask', `${M}/${U1}/assign_adapter`, `${M}/${U1}/remove`, `${M}/${U1}/ap_config`, 'kernel/debug/apsim/lpar', 'kernel/debug/apsim/guests', 'kernel/debug/apsim/restore', 'devices/ap/card05/05.0004/driver_override']) {
      t.true(files.includes(must), `${must} is among the writable files`)
    }
    const unknown = files.filter(f => storeErrnos(f, NEWEST) === undefined)
    t.deepEqual(unknown, [], 'every writable file has a documented errno set')
    t.log(`fuzz seed ${SEED} (APSIM_FUZZ_SEED=${SEED} reproduces), ${SECONDS} s over ${files.length} writable files`)
    console.log(`fuzz: seed ${SEED} (APSIM_FUZZ_SEED=${SEED} reproduces this run)`)

    const r = await runFor('python3', [WRITER, m.dir, String(SEED), String(SECONDS), ...files], (SECONDS + 60) * 1000)
    const lines = r.stdout.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Rec & { beat?: number | string, done?: number, unblock?: string })
    if (r.timedOut) {
      totals.hangs++
      t.fail(`the writer did not finish within ${SECONDS + 60} s; its last lines:\n${lines.slice(-5).map(l => JSON.stringify(l)).join('\n')}`)
      return
    }
    t.is(r.code, 0, r.stderr)
    t.true(lines.some(l => l.done !== undefined), 'the writer finished')
    const beats = lines.filter(l => l.beat !== undefined).map(l => l.beat!)
    t.true(beats.length >= SECONDS / 2, `${beats.length} heartbeats`)
    const badBeats = beats.filter(b => typeof b !== 'number' || b > 5000)
    t.deepEqual(badBeats, [], 'every heartbeat read was answered within 5 s')
    // only a `remove` blocks (until the guest the fuzzer started is stopped)
    const unblocked = lines.filter(l => l.unblock !== undefined)
    t.deepEqual(unblocked.filter(l => !/\/remove$/.test(l.unblock!) || (l as { error?: string }).error !== undefined), [], 'only mdev removes blocked, and stopping the guests released them')

    const problems: string[] = []
    const byErrno = new Map<string, number>()
    let slowest = 0
    for (const rec of lines.filter(l => l.path !== undefined)) {
      const allowed = storeErrnos(rec.path, NEWEST) ?? new Set<Errno>()
      slowest = Math.max(slowest, rec.ms)
      for (const [n, [len, res]] of rec.res.entries()) {
        totals.writes++
        if (res === 'ok') continue // dd wrote everything
        if (typeof res === 'number') {
          // kernfs: a store takes at most a page; the writer sees min(len, 4096)
          if (res !== Math.min(len, 4096)) problems.push(`${rec.path} (${rec.how}, ${len} bytes): write returned ${res}, expected ${Math.min(len, 4096)}`)
          continue
        }
        totals.refused++
        byErrno.set(res, (byErrno.get(res) ?? 0) + 1)
        // a file that went away: ENOENT, or EACCES for dd, which opens with O_CREAT (creating a file in sysfs);
        // ENODEV for a write on an fd whose file an earlier write of the same open removed (`remove`: kernfs_get_active; dd writes block by block)
        const ok = res === 'open:ENOENT' || (res === 'open:EACCES' && rec.how === 'dd') || (!res.startsWith('open:') && allowed.has(res as Errno)) ||
          (res === 'ENODEV' && (n > 0 || rec.how === 'dd'))
        if (!ok) problems.push(`#${rec.i} ${rec.path} (${rec.how}, ${len} bytes): ${res}, documented: ${[...allowed].join(', ')}`)
      }
    }
    totals.unexpected += problems.length
    t.deepEqual(problems.slice(0, 20), [], `${problems.length} writes ended outside their documented errnos`)
    t.log(`${totals.writes} write(2)s, ${totals.refused} refused (${[...byErrno].sort((a, b) => b[1] - a[1]).map(([e, n]) => `${e} ${n}`).join(', ')}), slowest ${slowest} ms`)

    // alive and answering
    const alive = m.daemon.exitCode === null && m.daemon.signalCode === null
    if (!alive) totals.crashes++
    t.true(alive, `the daemon is alive (exit ${String(m.daemon.exitCode)}, signal ${String(m.daemon.signalCode)})`)
    t.is((await m.sh('cat bus/ap/bindings')).code, 0)
    t.notRegex(m.log(), /unexpected exception|"level":60/, 'no unexpected exception in the daemon log')

    // the tree is the model: state -> Host.fromState, every file and link compared
    const stateText = await m.sh('cat kernel/debug/apsim/state')
    t.is(stateText.code, 0, stateText.stderr)
    const host = Host.fromState(JSON.parse(stateText.stdout) as HostState)
    const expected = walk(host.root)
    const read = await run('python3', ['-c', READ_ALL, m.dir], { cwd: '/' })
    t.is(read.code, 0, read.stderr)
    const actual = new Map(Object.entries(JSON.parse(read.stdout) as Record<string, string>))
    const diff: string[] = []
    for (const [k, v] of expected) {
      const a = actual.get(k)
      if (a === undefined) diff.push(`${k}: only in the model`)
      else if (a !== v) diff.push(`${k}: mount ${JSON.stringify(a.slice(0, 120))}, model ${JSON.stringify(v.slice(0, 120))}`)
    }
    for (const k of actual.keys()) if (!expected.has(k)) diff.push(`${k}: only in the mount`)
    t.deepEqual(diff.slice(0, 30), [], `${diff.length} differences between the mount and its state restored in-process (${expected.size} entries compared)`)
  } finally {
    const tail = m.log().split('\n').filter(l => /"level":(50|60)/.test(l)).slice(-5).join('\n')
    await m.stop()
    if (tail !== '') t.log(`daemon errors:\n${tail}`)
  }
})

/**
 * The daemon has one thread: `restore` of a FIFO, a device or a huge file must be refused at
 * once (EINVAL, reason in last_error), never read while every FUSE operation waits.
 */
test('restore of a FIFO or a device is refused at once and the mount stays answered', async t => {
  const m = await mountHost()
  const fifo = path.join(path.dirname(m.dir), 'state.fifo')
  try {
    t.is((await run('mkfifo', [fifo])).code, 0)
    for (const target of [fifo, '/dev/zero']) {
      const r = await m.sh(`echo ${target} > kernel/debug/apsim/restore; cat kernel/debug/apsim/last_error; cat bus/ap/bindings`)
      t.regex(r.stderr, /echo: write error: Invalid argument\n$/, target)
      t.regex(r.stdout, /^EINVAL: .*not a regular file\n12\/12 \(complete\)\n$/, target)
    }
  } finally {
    await m.stop()
  }
})

test.after.always(() => {
  console.log(`fuzz: seed ${SEED}: ${totals.writes} write(2)s tried, ${totals.refused} refused, ${totals.crashes} crashes, ${totals.hangs} hangs, ${totals.unexpected} undocumented errnos`)
})
