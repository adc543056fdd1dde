/**
 * `apsim run -- CMD`: CMD's exit status, the tree over /sys in a private namespace only,
 * --env-only, --root, and the clean-up on every way out (CMD's end, its crash, processes it
 * left behind, SIGINT/SIGTERM to apsim run).
 */
import test from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { apsimRun, ensureClients } from '../helpers/clients.js'
import { apsim, CLI, mountHost, requireFuse, RUN_DIR } from '../helpers/mount.js'
import { userCopy } from '../helpers/user.js'

test.before(() => { requireFuse() })

/** The lines of the host's mount table, without the mount ids (other tests mount concurrently). */
const mountinfo = (): string[] => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(l => l !== '')
const mountsAt = (dir: string): string[] => mountinfo().filter(l => l.split(' ')[4] === dir)
const sysLine = (): string[] => mountsAt('/sys')

/** Processes whose command line mentions `text` (a run's tmp dir: its daemon, its CMD). */
function processesMentioning (text: string): number[] {
  const out: number[] = []
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue
    try { if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text)) out.push(Number(p)) } catch { /* gone */ }
  }
  return out
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'))
  } catch { return false }
}

/** Nothing of the run whose tmp root was `root` is left: no mount, no process, no directory. */
function assertGone (t: import('ava').ExecutionContext, root: string): void {
  t.true(root.startsWith(os.tmpdir() + '/apsim-run-'), root)
  t.deepEqual(mountsAt(path.join(root, 'sys')), [], 'the mount is gone')
  t.deepEqual(processesMentioning(root), [], 'the daemon is gone')
  t.false(existsSync(root), 'the tmp dir is gone')
}

/** A running `apsim run`, for tests that act while CMD runs. */
interface Live {
  child: ChildProcess
  out: () => string
  err: () => string
  /** Resolves once stdout has a line matching `re`; its match. */
  line: (re: RegExp) => Promise<RegExpExecArray>
  status: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

function start (args: string[]): Live {
  const child = spawn(process.execPath, [CLI, 'run', ...args], { cwd: '/', stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, APSIM_RUN_DIR: RUN_DIR, LC_ALL: 'C' } })
  let out = ''
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d })
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d })
  const status = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => child.on('close', (code, signal) => resolve({ code, signal })))
  const line = async (re: RegExp): Promise<RegExpExecArray> => await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`no line ${String(re)} within 20 s; stdout: ${out}\nstderr: ${err}`)) }, 20000)
    const check = (): void => {
      const m = re.exec(out)
      if (m !== null) { clearTimeout(timer); child.stdout!.off('data', check); resolve(m) }
    }
    child.stdout!.on('data', check)
    void status.then(() => { clearTimeout(timer); const m = re.exec(out); if (m !== null) resolve(m); else reject(new Error(`apsim run ended without ${String(re)}; stdout: ${out}\nstderr: ${err}`)) })
    check()
  })
  return { child, out: () => out, err: () => err, line, status }
}

test('CMD\'s exit status is apsim run\'s; 128+N when signal N ended it', async t => {
  t.is((await apsimRun('exit 0')).code, 0)
  t.is((await apsimRun('exit 7')).code, 7)
  t.is((await apsimRun('kill -TERM $$')).code, 128 + 15)
  t.is((await apsimRun('kill -KILL $$')).code, 128 + 9)
})

test('a CMD that cannot run is 127; a host that cannot come up is 125 with the reason', async t => {
  const missing = await apsim('run', '--', 'no-such-command-apsim')
  t.is(missing.code, 127)
  t.regex(missing.stderr, /no-such-command-apsim: command not found/)
  const bad = await apsimRun('true', ['--topology', '/nonexistent/topology.yaml'])
  t.is(bad.code, 125)
  t.regex(bad.stderr, /cannot read topology \/nonexistent\/topology\.yaml/)
  t.is((await apsim('run', '--no-such-option', '--', 'true')).code, 125)
  t.is((await apsim('run')).code, 125)
  const notMounted = await apsimRun('true', ['--root', os.tmpdir()])
  t.is(notMounted.code, 125)
  t.regex(notMounted.stderr, /nothing is mounted there/)
})

test('CMD sees the simulated tree over /sys and the variables; the host\'s mount table only gets the daemon\'s mount', async t => {
  const before = sysLine()
  t.is(before.length, 1)
  const r = start(['--', 'bash', '-c', [
    'echo "root=$APSIM_ROOT"',
    'echo "SYSFS_ROOT=$SYSFS_ROOT VERIFY=$SYSTEMD_DEVICE_VERIFY_SYSFS"',
    'echo "domain=$(cat /sys/bus/ap/ap_domain)"',
    'echo "card=$(readlink -f /sys/bus/ap/devices/card04)"',
    'awk \'$5 == "/sys" { sub(/.* - /, ""); print "sysfs=" $1 }\' /proc/self/mountinfo | tail -1',
    'echo ready; read -r _'
  ].join('\n')])
  const root = path.dirname((await r.line(/^root=(.*)$/m))[1])
  await r.line(/^ready$/m)
  // While CMD runs: the host's /sys is the real one; the only new mount is the daemon's.
  t.deepEqual(sysLine(), before)
  const ours = mountsAt(path.join(root, 'sys'))
  t.is(ours.length, 1)
  t.regex(ours[0], / - fuse\.apsim sysfs /)
  t.false(mountinfo().some(l => l.includes(root) && l.split(' ')[4] !== path.join(root, 'sys')))
  r.child.stdin!.end('\n')
  t.deepEqual(await r.status, { code: 0, signal: null })
  const out = r.out()
  t.regex(out, /^SYSFS_ROOT=\/sys VERIFY=0$/m)
  t.regex(out, /^domain=4$/m)
  t.regex(out, /^card=\/sys\/devices\/ap\/card04$/m)
  t.regex(out, /^sysfs=fuse\.apsim$/m)
  t.deepEqual(sysLine(), before)
  assertGone(t, root)
})

test('a crashing CMD and the processes it left in the namespace: all ended, everything cleaned up', async t => {
  const r = start(['--verbose', '--', 'bash', '-c', 'echo "root=$APSIM_ROOT"; sleep 300 & echo "bg=$!"; setsid sleep 301 & echo "sid=$!"; sleep 0.2; kill -SEGV $$'])
  const root = path.dirname((await r.line(/^root=(.*)$/m))[1])
  const bg = Number((await r.line(/^bg=(\d+)$/m))[1])
  const sid = Number((await r.line(/^sid=(\d+)$/m))[1])
  t.deepEqual(await r.status, { code: 128 + 11, signal: null })
  t.regex(r.err(), /ending what the command left running/)
  t.false(alive(bg))
  t.false(alive(sid))
  assertGone(t, root)
})

test('off a terminal, what was ended is said only with --verbose', async t => {
  const r = await apsimRun('sleep 300 & exit 0')
  t.deepEqual(r, { code: 0, stdout: '', stderr: '' })
})

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  test(`${sig} to apsim run reaches CMD; its status is CMD's and everything is cleaned up`, async t => {
    const before = sysLine()
    const r = start(['--', 'bash', '-c', 'echo "root=$APSIM_ROOT"; echo "pid=$$"; exec sleep 60'])
    const root = path.dirname((await r.line(/^root=(.*)$/m))[1])
    const pid = Number((await r.line(/^pid=(\d+)$/m))[1])
    t.true(alive(pid))
    r.child.kill(sig)
    t.deepEqual(await r.status, { code: 128 + os.constants.signals[sig], signal: null })
    t.false(alive(pid))
    assertGone(t, root)
    t.deepEqual(sysLine(), before)
  })
}

test('a CMD that ignores SIGTERM is waited for; its own status counts', async t => {
  const r = start(['--', 'bash', '-c', 'trap "echo got-term; exit 3" TERM; echo "root=$APSIM_ROOT"; for i in $(seq 100); do sleep 0.1; done'])
  const root = path.dirname((await r.line(/^root=(.*)$/m))[1])
  r.child.kill('SIGTERM')
  t.deepEqual(await r.status, { code: 3, signal: null })
  t.regex(r.out(), /got-term/)
  assertGone(t, root)
})

test('--env-only: no namespace, SYSFS_ROOT and APSYSFS_* in the mount, MDEVCTL_ENV_ROOT its parent with mdevctl\'s layout', async t => {
  const r = await apsimRun([
    'echo "SYSFS_ROOT=$SYSFS_ROOT"', 'echo "MDEVCTL_ENV_ROOT=$MDEVCTL_ENV_ROOT"', 'echo "AP=$APSYSFS_BUSDIR $APSYSFS_DEVSDIR"',
    'cat "$SYSFS_ROOT/bus/ap/ap_domain"',
    'ls -d "$MDEVCTL_ENV_ROOT/etc/mdevctl.d/scripts.d/callouts" "$MDEVCTL_ENV_ROOT/usr/lib/mdevctl/scripts.d/notifiers" "$MDEVCTL_ENV_ROOT/sys/bus/mdev/devices"',
    'awk \'$5 == "/sys" { sub(/.* - /, ""); print "sysfs=" $1 }\' /proc/self/mountinfo | tail -1'
  ].join('\n'), ['--env-only'])
  t.is(r.code, 0, r.stderr)
  const root = /^MDEVCTL_ENV_ROOT=(.*)$/m.exec(r.stdout)![1]
  t.regex(r.stdout, new RegExp(`^SYSFS_ROOT=${root}/sys$`, 'm'))
  t.regex(r.stdout, new RegExp(`^AP=${root}/sys/bus/ap ${root}/sys/devices/ap$`, 'm'))
  t.regex(r.stdout, /^4$/m)
  t.regex(r.stdout, /^sysfs=sysfs$/m) // the real /sys stays
  assertGone(t, root)
})

test('--env-only works for a user who is not root', async t => {
  const user = await userCopy()
  try {
    const r = await user.as(process.execPath, [user.cli, 'run', '--env-only', '--', 'sh', '-c', `id -u; cat "$SYSFS_ROOT/bus/ap/ap_domain"; echo "$MDEVCTL_ENV_ROOT"; ls -ld "$SYSFS_ROOT/devices/ap/card04"`])
    t.is(r.code, 0, r.stderr)
    const [uid, domain, root] = r.stdout.split('\n')
    t.not(uid, '0')
    t.is(domain, '4')
    assertGone(t, root)
  } finally { user.remove() }
})

test('--root DIR runs CMD against a running host and leaves it running', async t => {
  const m = await mountHost()
  try {
    const r = await apsimRun('echo -5 > /sys/bus/ap/apmask && cat /sys/bus/ap/apmask && echo "root=$APSIM_ROOT"', ['--root', m.dir])
    t.is(r.code, 0, r.stderr)
    t.regex(r.stdout, new RegExp(`^root=${m.dir}$`, 'm'))
    t.regex(await m.read('bus/ap/apmask'), /^0xfb/)
    t.is(m.daemon.exitCode, null)
    t.is(mountsAt(m.dir).length, 1)
    t.is((await apsimRun('true', ['--root', m.dir, '--state', '/tmp/x.json'])).code, 125)
  } finally { await m.stop() }
})

test('--topology and --kernel reach the fresh host; --state keeps it across runs', async t => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-runstate-'))
  try {
    const topo = path.join(tmp, 't.yaml')
    writeFileSync(topo, 'adapters:\n  - { id: 0x0b, type: CEX7, mode: ep11 }\nusage_domains: [1]\n')
    const state = path.join(tmp, 'state.json')
    const a = await apsimRun('ls /sys/devices/ap; echo -0xb > /sys/bus/ap/apmask', ['--topology', topo, '--state', state])
    t.is(a.code, 0, a.stderr)
    t.regex(a.stdout, /^card0b$/m)
    const b = await apsimRun('cat /sys/bus/ap/apmask; readlink /sys/devices/ap/card0b/0b.0001/driver', ['--state', state])
    t.is(b.code, 0, b.stderr)
    t.regex(b.stdout, /^0xffef/m)
    t.regex(b.stdout, /\/vfio_ap$/m)
    const k = await apsimRun('ls /sys/bus/ap/features /sys/devices/vfio_ap/matrix/features 2>&1 | sed "s/^ls: //"', ['--kernel', '5.10'])
    t.is(k.code, 0, k.stderr)
    t.regex(k.stdout, /cannot access '\/sys\/bus\/ap\/features'/) // 6.4 and later only
    t.regex(k.stdout, /cannot access '\/sys\/devices\/vfio_ap\/matrix\/features'/)
  } finally { rmSync(tmp, { recursive: true, force: true }) }
})

test('the host\'s /etc/mdevctl.d is not CMD\'s: a fresh one, or --mdevctl-dir', async t => {
  await ensureClients(t) // mdevctl's package makes /etc/mdevctl.d
  const r = await apsimRun('test -d /etc/mdevctl.d || { echo no-mdevctl; exit 0; }; ls -A /etc/mdevctl.d/scripts.d; ls /etc/mdevctl.d | grep -vx scripts.d || echo empty; touch /etc/mdevctl.d/apsim-probe')
  t.is(r.code, 0, r.stderr)
  if (r.stdout.includes('no-mdevctl')) { t.pass('no /etc/mdevctl.d on this host: nothing to hide'); return }
  t.regex(r.stdout, /^callouts\nnotifiers\nempty$/m)
  t.false(existsSync('/etc/mdevctl.d/apsim-probe'))
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-mdevctl-'))
  try {
    const w = await apsimRun('touch /etc/mdevctl.d/kept', ['--mdevctl-dir', tmp])
    t.is(w.code, 0, w.stderr)
    t.true(existsSync(path.join(tmp, 'kept')))
  } finally { rmSync(tmp, { recursive: true, force: true }) }
})
