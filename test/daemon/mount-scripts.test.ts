/**
 * The shell entry points without Node in the loop: apsim-ns.sh (a command in a private
 * namespace with a live mount over /sys) and apsim-clean.sh (what a dead daemon left).
 */
import test from 'ava'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { mountHost, requireFuse, run, RUN_DIR } from '../helpers/mount.js'

const SCRIPTS = fileURLToPath(new URL('../../../mount-scripts/', import.meta.url))
const NS = path.join(SCRIPTS, 'apsim-ns.sh')
const CLEAN = path.join(SCRIPTS, 'apsim-clean.sh')
const ENV = { ...process.env, APSIM_RUN_DIR: RUN_DIR, LC_ALL: 'C', APSIM_VERBOSE: '1' }

test.before(() => { requireFuse() })

const mountsAt = (dir: string): string[] => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(l => l.split(' ')[4] === dir)
const alive = (pid: number): boolean => {
  try { return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')) } catch { return false }
}

test('apsim-ns.sh: CMD sees the mount over /sys, its status comes back, what it left is ended, the host keeps its /sys', async t => {
  const m = await mountHost()
  try {
    const sys = mountsAt('/sys')
    const r = await run('bash', [NS, m.dir, '--', 'bash', '-c', [
      'cat /sys/bus/ap/ap_domain', 'echo "$SYSFS_ROOT $SYSTEMD_DEVICE_VERIFY_SYSFS $APSIM_ROOT"',
      'awk \'$5 == "/sys" { sub(/.* - /, ""); print $1 }\' /proc/self/mountinfo | tail -1',
      'sleep 300 & echo "bg=$!"', 'exit 3'
    ].join('\n')], { cwd: '/', env: ENV })
    t.is(r.code, 3, r.stderr)
    const [domain, vars, fstype, bg] = r.stdout.split('\n')
    t.is(domain, '4')
    t.is(vars, `/sys 0 ${m.dir}`)
    t.is(fstype, 'fuse.apsim')
    t.regex(r.stderr, /ending what the command left running/) // APSIM_VERBOSE=1: stderr is no terminal
    t.false(alive(Number(bg.slice(3))))
    t.deepEqual(mountsAt('/sys'), sys)
    t.is(mountsAt(m.dir).length, 1)

    t.is((await run('bash', [NS, m.dir, '--', 'sh', '-c', 'kill -SEGV $$'], { cwd: '/', env: ENV })).code, 128 + 11)
    const missing = await run('bash', [NS, m.dir, '--', 'no-such-command-apsim'], { cwd: '/', env: ENV })
    t.is(missing.code, 127)
    t.regex(missing.stderr, /no-such-command-apsim: command not found/)
  } finally { await m.stop() }
})

test('apsim-ns.sh passes SIGTERM on to CMD; refuses what is not a live apsim mount with 125', async t => {
  const m = await mountHost()
  try {
    const child = spawn('bash', [NS, m.dir, '--', 'bash', '-c', 'echo "pid=$$"; sleep 60 & wait'], { cwd: '/', env: ENV, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    const status = new Promise<number | null>(resolve => child.on('close', code => resolve(code)))
    for (let i = 0; i < 200 && !out.includes('\n'); i++) await new Promise(resolve => setTimeout(resolve, 50))
    const pid = Number(/pid=(\d+)/.exec(out)?.[1])
    child.kill('SIGTERM')
    t.is(await status, 128 + 15)
    t.false(alive(pid))
  } finally { await m.stop() }
  const notMount = await run('bash', [NS, os.tmpdir(), '--', 'true'], { cwd: '/', env: ENV })
  t.is(notMount.code, 125)
  t.regex(notMount.stderr, /is not an apsim mount/)
  t.is((await run('bash', [NS, '/nonexistent-apsim', '--', 'true'], { cwd: '/', env: ENV })).code, 125)
  t.is((await run('bash', [NS, os.tmpdir(), 'true'], { cwd: '/', env: ENV })).code, 125) // no --
})

test('apsim-clean.sh: a stale mount is detached and its record removed; a live one only with --force; nothing mounted is fine', async t => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-clean-'))
  const dir = path.join(tmp, 'sys')
  try {
    t.is((await run('bash', [CLEAN, dir], { cwd: '/', env: ENV })).code, 0)

    const a = await mountHost({ dir })
    const records = (): string[] => readdirSync(RUN_DIR).filter(f => f.endsWith('.json') && readFileSync(path.join(RUN_DIR, f), 'utf8').includes(`"dir": "${dir}"`))
    t.is(records().length, 1)
    const live = await run('bash', [CLEAN, dir], { cwd: '/', env: ENV })
    t.is(live.code, 1)
    t.regex(live.stderr, /is a live apsim mount/)
    t.is(a.daemon.exitCode, null)
    t.is(mountsAt(dir).length, 1)

    // Stale: the daemon and its auto_unmount watchdog SIGKILLed.
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
    t.is(mountsAt(dir).length, 1)
    const stale = await run('bash', [CLEAN, dir], { cwd: '/', env: ENV })
    t.is(stale.code, 0, stale.stderr)
    t.regex(stale.stderr, /is a stale apsim mount; detaching it/)
    t.deepEqual(mountsAt(dir), [])
    t.deepEqual(records(), [])
    await a.stop()

    const b = await mountHost({ dir })
    const forced = await run('bash', [CLEAN, '--force', dir], { cwd: '/', env: ENV })
    t.is(forced.code, 0, forced.stderr)
    t.deepEqual(mountsAt(dir), [])
    await b.stop()
    t.true(b.daemon.exitCode !== null || b.daemon.signalCode !== null)
  } finally {
    if (mountsAt(dir).length > 0) await run('fusermount', ['-uz', dir])
    rmSync(tmp, { recursive: true, force: true })
  }
})

test('apsim-clean.sh never touches a mount that is not apsim\'s', async t => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-clean-other-'))
  try {
    writeFileSync(path.join(tmp, 'probe'), '')
    // A tmpfs inside a private namespace: the host's table is not touched by the test either.
    const r = await run('unshare', ['--mount', '--propagation', 'private', '--', 'bash', '-c',
      `mount -t tmpfs tmpfs "${tmp}" && bash "${CLEAN}" --force "${tmp}"; echo "status=$?"; awk -v d="${tmp}" '$5 == d' /proc/self/mountinfo | wc -l`], { cwd: '/', env: ENV })
    t.regex(r.stdout, /^status=1\n1\n$/)
    t.regex(r.stderr, /is a tmpfs mount, not apsim's; not touching it/)
    t.true(existsSync(path.join(tmp, 'probe')))
  } finally { rmSync(tmp, { recursive: true, force: true }) }
})
