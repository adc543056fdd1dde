/**
 * Crashes and lifecycle, beyond what other files cover: test/daemon/fuse.test.ts has
 * SIGTERM/SIGINT (with a shell inside), SIGKILL followed by the next mount, and a stale mount
 * (daemon and watchdog killed) cleaned by the next `apsim mount`; test/daemon/state.test.ts
 * has "SIGKILL right after writes loses nothing" with --state; test/daemon/mount-scripts.test.ts
 * has mount-scripts/apsim-clean.sh on a stale, a live and a foreign mount. Here:
 *
 *   - SIGTERM with clients holding the mount busy: open read and write fds, a shell cd'd
 *     inside, a reader looping over a file, and a `remove` blocked on a running guest. The
 *     daemon unmounts and exits 0 promptly, every client ends (with an error, not a hang),
 *     nothing stays mounted, and the next mount at the same directory works;
 *   - a stale mount that is busy (a shell cd'd inside, an fd open) is still detached by
 *     apsim-clean.sh and by the next `apsim mount`;
 *   - the daemon survives clients that vanish mid-operation: a writer SIGKILLed between
 *     open and write, readers SIGKILLed in the middle of `dd bs=1` of a long file, and a
 *     `remove` writer SIGKILLed while the guest holds the mdev — it cannot die before the
 *     daemon answers (FUSE waits for the reply), the remove completes when the guest stops,
 *     and the daemon keeps answering with a consistent host.
 */
import test from 'ava'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { mountHost, type Mounted, RUN_DIR, run } from '../helpers/mount.js'

const CLEAN = fileURLToPath(new URL('../../../mount-scripts/apsim-clean.sh', import.meta.url))
const U = '1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f'
const M = 'devices/vfio_ap/matrix'
const T = `${M}/mdev_supported_types/vfio_ap-passthrough`

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))
const mounted = (dir: string): boolean => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some(l => l.split(' ')[4] === dir)
const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }
async function until (cond: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (await cond()) return true
  return await cond()
}

/** A client process we start and may kill (by its pid); its output so far and its end. */
interface Client { child: ChildProcess, out: () => string, ended: Promise<{ code: number | null, signal: NodeJS.Signals | null }> }
function client (cmd: string, args: string[], cwd = '/'): Client {
  const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.setEncoding('latin1').on('data', (d: string) => { out += d })
  child.stderr!.setEncoding('latin1').on('data', (d: string) => { out += d })
  const ended = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => child.on('close', (code, signal) => resolve({ code, signal })))
  return { child, out: () => out, ended }
}

/** The process state letter of /proc/PID/stat (R, S, D, Z, ...). */
function procState (pid: number): string | undefined {
  try { const s = readFileSync(`/proc/${pid}/stat`, 'utf8'); return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3) } catch { return undefined }
}

async function populated (m: Mounted, guest: boolean): Promise<void> {
  const r = await m.sh([
    'echo -5,-6 > bus/ap/apmask',
    `echo ${U} > ${T}/create`,
    `echo 5 > ${M}/${U}/assign_adapter`,
    `echo 4 > ${M}/${U}/assign_domain`,
    ...(guest ? [`echo start g1 ${U} > kernel/debug/apsim/guests`] : [])
  ].join(' && '))
  if (r.code !== 0) throw new Error(r.stderr)
}

/** Healthy: answers reads and writes, and logged no error or unexpected exception. */
async function healthy (m: Mounted): Promise<string[]> {
  const problems: string[] = []
  if (m.daemon.exitCode !== null || m.daemon.signalCode !== null) problems.push(`the daemon exited (${String(m.daemon.exitCode ?? m.daemon.signalCode)})`)
  const r = await m.sh('cat bus/ap/bindings >/dev/null && echo -7 > bus/ap/apmask && echo +7 > bus/ap/apmask')
  if (r.code !== 0) problems.push(`it does not answer: ${r.stderr}`)
  for (const l of m.log().split('\n').filter(l => /"level":(50|60)/.test(l))) problems.push(`logged: ${l.slice(0, 300)}`)
  return problems
}

const totals = { scenarios: 0, clientsKilled: 0, crashes: 0 }

test('SIGTERM with open fds, a shell inside, a looping reader and a blocked remove: unmounted, exit 0, every client ends', async t => {
  t.timeout(60000)
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-life-'))
  const dir = path.join(tmp, 'sys')
  try {
    const m = await mountHost({ dir })
    await populated(m, true)
    const holder = client('python3', ['-c', String.raw`
import os, sys, time
root = sys.argv[1]
fds = [os.open(os.path.join(root, p), f) for p, f in [("bus/ap/apmask", os.O_RDONLY), ("bus/ap/apmask", os.O_WRONLY), ("devices/ap/card04/04.0004/online", os.O_RDWR), ("kernel/debug/apsim/uevents", os.O_RDONLY)]]
os.read(fds[0], 10)
print("open", flush=True)
time.sleep(30)
`, dir])
    const shell = client('bash', ['-c', 'echo inside; sleep 30'], path.join(dir, 'devices/ap/card04'))
    const reader = client('python3', ['-c', String.raw`
import os, sys
p = os.path.join(sys.argv[1], "kernel/debug/apsim/dmesg")
n = 0
print("reading", flush=True)
while True:
    with open(p, "rb") as f:
        while f.read(7):
            n += 1
`, dir])
    const remover = client('bash', ['-c', `echo 1 > ${M}/${U}/remove; echo "remove: $?"`], dir)
    t.true(await until(() => holder.out().includes('open') && shell.out().includes('inside') && reader.out().includes('reading')), `clients ready: ${holder.out()} ${shell.out()} ${reader.out()}`)
    t.true(await until(async () => (await m.sh(`test -e ${M}/${U}/remove || echo gone`)).stdout === 'gone\n'), 'the remove is waiting for the guest')

    const t0 = Date.now()
    const exit = new Promise<number | null>(resolve => m.daemon.once('exit', c => resolve(c)))
    m.daemon.kill('SIGTERM')
    t.is(await exit, 0, 'the daemon exits 0')
    const ms = Date.now() - t0
    t.true(ms < 5000, `it exits promptly (${ms} ms)`)
    t.true(await until(() => !mounted(dir)), 'nothing is mounted')

    // every client ends by itself (errors on the dead mount), none hangs; then they are done
    const ends = await Promise.race([
      Promise.all([reader.ended, remover.ended]),
      sleep(10000).then(() => undefined)
    ])
    t.not(ends, undefined, `the reader and the blocked writer end (reader: ${reader.out().slice(-200)}; remover: ${remover.out()})`)
    t.regex(remover.out(), /remove: 1|Transport endpoint is not connected|No such device|Interrupted/, 'the blocked remove fails')
    for (const c of [holder, shell, reader, remover]) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL')
    await Promise.all([holder.ended, shell.ended, reader.ended, remover.ended])
    await m.stop()

    // the directory is usable again
    const again = await mountHost({ dir })
    try {
      t.is((await again.sh('cat bus/ap/bindings')).code, 0)
    } finally { await again.stop() }
    totals.scenarios++
  } finally {
    if (mounted(dir)) await run('fusermount', ['-uz', dir])
    rmSync(tmp, { recursive: true, force: true })
  }
})

test('a busy stale mount (shell inside, fd open) is detached by apsim-clean.sh and by the next mount', async t => {
  t.timeout(60000)
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-busy-stale-'))
  const dir = path.join(tmp, 'sys')
  const ENV = { ...process.env, APSIM_RUN_DIR: RUN_DIR }
  try {
    for (const how of ['apsim-clean.sh', 'apsim mount']) {
      const a = await mountHost({ dir })
      const shell = client('bash', ['-c', 'echo inside; exec 3< bus/ap/apmask; sleep 30'], dir)
      t.true(await until(() => shell.out().includes('inside')))
      // stale: the auto_unmount watchdog and the daemon SIGKILLed
      const pid = a.daemon.pid!
      for (const p of readdirSync('/proc').filter(p => /^\d+$/.test(p))) {
        try {
          const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
          if (stat.includes('(fusermount)') && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) process.kill(Number(p), 'SIGKILL')
        } catch { /* gone */ }
      }
      const exited = new Promise(resolve => a.daemon.once('exit', resolve))
      a.daemon.kill('SIGKILL')
      await exited
      t.true(mounted(dir), `${how}: the mount is stale`)
      if (how === 'apsim-clean.sh') {
        const c = await run('bash', [CLEAN, dir], { cwd: '/', env: ENV })
        t.is(c.code, 0, c.stderr)
        t.false(mounted(dir), 'apsim-clean.sh detached it although it is busy')
      }
      // (a.stop() only after b: the harness would detach whatever is mounted at dir)
      const b = await mountHost({ dir })
      try {
        t.is((await b.sh('cat bus/ap/bindings')).code, 0, `${how}: the next mount works`)
        if (how === 'apsim mount') t.regex(b.log(), /cleaning a stale mount/)
      } finally { await b.stop() }
      await a.stop()
      shell.child.kill('SIGKILL')
      await shell.ended
    }
    totals.scenarios++
  } finally {
    if (mounted(dir)) await run('fusermount', ['-uz', dir])
    rmSync(tmp, { recursive: true, force: true })
  }
})

test('clients that vanish mid-operation: a writer killed between open and write, readers killed mid-dd', async t => {
  t.timeout(60000)
  const m = await mountHost()
  try {
    await populated(m, false)
    // between open and write
    for (const file of ['bus/ap/apmask', `${M}/${U}/assign_domain`, 'kernel/debug/apsim/lpar', `${T}/create`]) {
      const w = client('python3', ['-c', 'import os,sys,time; fd=os.open(sys.argv[1], os.O_WRONLY); print("open", flush=True); time.sleep(30); os.write(fd, b"-7\\n")', path.join(m.dir, file)])
      t.true(await until(() => w.out().includes('open')), `${file}: ${w.out()}`)
      w.child.kill('SIGKILL')
      t.is((await w.ended).signal, 'SIGKILL')
      totals.clientsKilled++
    }
    t.is(await m.read('bus/ap/apmask'), '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n', 'nothing was stored')
    // mid-read: 1-byte reads of long files, killed while reading
    const big = ['kernel/debug/apsim/uevents', 'kernel/debug/apsim/state', 'kernel/debug/apsim/dmesg', `${M}/${U}/matrix`]
    for (let round = 0; round < 3; round++) {
      const readers = big.map(f => client('dd', [`if=${path.join(m.dir, f)}`, 'of=/dev/null', 'bs=1', 'status=none']))
      await sleep(150 + 100 * round)
      for (const r of readers) r.child.kill('SIGKILL')
      await Promise.all(readers.map(async r => await r.ended))
      totals.clientsKilled += readers.length
    }
    t.deepEqual(await healthy(m), [])
    totals.scenarios++
  } finally { await m.stop() }
})

test('a remove writer SIGKILLed while the guest holds the mdev: it ends once the guest stops, the remove completes, the daemon stays healthy', async t => {
  t.timeout(60000)
  const m = await mountHost()
  try {
    await populated(m, true)
    const remover = client('bash', ['-c', `exec 3> ${M}/${U}/remove; echo open; echo 1 >&3; echo "remove: $?"`], m.dir)
    t.true(await until(() => remover.out().includes('open')))
    t.true(await until(async () => (await m.sh(`test -e ${M}/${U}/remove || echo waiting`)).stdout === 'waiting\n'), 'the remove waits for the guest')
    const pid = remover.child.pid!
    remover.child.kill('SIGKILL')
    totals.clientsKilled++
    await sleep(500)
    // FUSE cannot abandon a request the daemon has not answered: the writer waits, unkillable
    t.true(alive(pid), 'the killed writer still waits for the daemon\'s answer')
    t.regex(procState(pid) ?? '', /[DS]/)
    t.deepEqual(await healthy(m), [], 'meanwhile the daemon serves everything else')
    t.is((await m.sh('cat kernel/debug/apsim/guests')).stdout, `g1 ${U}\n`)

    t.is((await m.sh('echo stop g1 > kernel/debug/apsim/guests')).code, 0)
    const end = await Promise.race([remover.ended, sleep(5000).then(() => undefined)])
    t.deepEqual(end, { code: null, signal: 'SIGKILL' }, 'the writer ends once the daemon answered')
    t.false(alive(pid))
    t.is((await m.sh(`test -e ${M}/${U} || echo gone`)).stdout, 'gone\n', 'the remove completed')
    t.is(await m.read(`${T}/available_instances`), '65536\n')
    t.regex(m.log(), /"store":"\/devices\/vfio_ap\/matrix\/[^"]+\/remove","data":"1\\n","result":"ok"/, 'the completed store is logged')
    // the same UUID can be created again, and removed at once (no guest)
    t.is((await m.sh(`echo ${U} > ${T}/create && echo 1 > ${M}/${U}/remove`)).code, 0)
    t.deepEqual(await healthy(m), [])
    totals.scenarios++
  } finally { await m.stop() }
})

test.after.always(() => {
  console.log(`lifecycle: ${totals.scenarios} scenarios, ${totals.clientsKilled} clients killed mid-operation, ${totals.crashes} crashes`)
})
