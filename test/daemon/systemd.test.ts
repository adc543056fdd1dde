/**
 * The systemd units: `systemd-analyze verify` accepts them as systemd/install.sh installs them
 * (in a private mount namespace, so the host's /usr/local/bin and /etc/systemd stay as they
 * are) and rejects a broken copy; and their commands, run as systemd runs them, keep the
 * promises the units make: active only once the mount answers, the daemon's pid in PIDFile,
 * the state kept across a crash and a restart, a stale mount cleaned before a start, a clean
 * stop on SIGTERM.
 */
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, promises as fsp, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureClients } from '../helpers/clients.js'
import { CLI, mountHost, requireFuse, run, type ShResult } from '../helpers/mount.js'

const REPO = fileURLToPath(new URL('../../../', import.meta.url))
const UNITS = path.join(REPO, 'systemd')
const CLEAN = path.join(REPO, 'mount-scripts/apsim-clean.sh')

test.before(async t => {
  requireFuse()
  await ensureClients(t)
})

/** `script` as root in a private mount namespace where install.sh has installed the units. */
async function installedNs (script: string): Promise<ShResult> {
  return await run('unshare', ['--mount', '--propagation', 'private', '--', 'bash', '-c', `set -e
mount -t tmpfs tmpfs /usr/local/bin
mount -t tmpfs tmpfs /etc/systemd/system
bash ${JSON.stringify(path.join(UNITS, 'install.sh'))} --no-reload >/dev/null
${script}`], { cwd: '/', env: { ...process.env, LC_ALL: 'C' } })
}

test('systemd-analyze verify accepts both units as installed, without a single warning', async t => {
  const r = await installedNs(`ln -s apsim@.service /etc/systemd/system/apsim@ci.service
test -x /usr/local/bin/apsim && test -x /usr/local/bin/apsim-clean
/usr/local/bin/apsim profiles --json >/dev/null
systemd-analyze verify --man=no apsim.service apsim@ci.service`)
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout + r.stderr, '')
})

test('systemd-analyze verify is not vacuous: a misspelled key, a bad value and a missing command are reported', async t => {
  const unit = readFileSync(path.join(UNITS, 'apsim@.service'), 'utf8')
  const broken: Array<[string, string, RegExp]> = [
    ['key', unit.replace('KillMode=mixed', 'KilMode=mixed'), /Unknown key 'KilMode'/],
    ['value', unit.replace('Type=forking', 'Type=forked'), /Failed to parse service type, ignoring: forked/],
    ['command', unit.replace('ExecStart=/usr/local/bin/apsim ', 'ExecStart=/usr/local/bin/apsim-nonexistent '), /apsim-nonexistent is not executable: No such file or directory/]
  ]
  for (const [what, text, expected] of broken) {
    const r = await installedNs(`cat > /etc/systemd/system/broken@.service <<'UNIT'
${text}UNIT
systemd-analyze verify --man=no broken@ci.service`)
    t.regex(r.stdout + r.stderr, expected, what)
  }
})

/** A unit's commands, with its paths moved under `tmp` (no systemd runs here: this test plays it). */
interface Unit {
  pidFile: string
  mountpoint: string
  topology: string
  state: string
  pre: string[]
  start: string[]
  stopPost: string[]
  env: NodeJS.ProcessEnv
}

function readUnit (file: string, instance: string, tmp: string): Unit {
  const moved = (s: string): string => s.replace(/%i/g, instance)
    .replace(/\/run\/apsim\//g, `${tmp}/run/`).replace(/\/var\/lib\/apsim\//g, `${tmp}/lib/`).replace(/\/etc\/apsim\//g, `${tmp}/etc/`)
  const lines = readFileSync(file, 'utf8').split('\n').filter(l => !l.startsWith('#'))
  const key = (k: string): string => {
    const l = lines.filter(l => l.startsWith(`${k}=`))
    if (l.length !== 1) throw new Error(`${file}: ${l.length} ${k}= lines`)
    return moved(l[0].slice(k.length + 1))
  }
  // The installed commands, as install.sh makes them: apsim runs the CLI with node.
  const command = (line: string): string[] => {
    const words = line.replace(/^-/, '').split(' ')
    if (words[0] === '/usr/local/bin/apsim') return [process.execPath, CLI, ...words.slice(1)]
    if (words[0] === '/usr/local/bin/apsim-clean') return ['bash', CLEAN, ...words.slice(1)]
    throw new Error(`unexpected command ${words[0]}`)
  }
  const start = command(key('ExecStart'))
  const arg = (flag: string): string => start[start.indexOf(flag) + 1]
  mkdirSync(path.join(tmp, 'run'), { recursive: true })
  mkdirSync(path.join(tmp, 'lib'), { recursive: true }) // StateDirectory=apsim
  mkdirSync(path.join(tmp, 'etc'), { recursive: true })
  return {
    pidFile: key('PIDFile'),
    mountpoint: start[start.indexOf('mount') + 1],
    topology: arg('--topology-if-exists'),
    state: arg('--state'),
    pre: command(key('ExecStartPre')),
    start,
    stopPost: command(key('ExecStopPost')),
    env: { ...process.env, APSIM_RUN_DIR: path.join(tmp, 'run'), LC_ALL: 'C' }
  }
}

const exec = async (u: Unit, argv: string[]): Promise<ShResult> => await run(argv[0], argv.slice(1), { cwd: '/', env: u.env })
const mounted = (dir: string): boolean => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some(l => l.split(' ')[4] === dir)
const cmdline = (pid: number): string => { try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8') } catch { return '' } }
const children = (pid: number, comm: string): number[] => readdirSync('/proc').filter(p => /^\d+$/.test(p)).map(Number).filter(p => {
  try {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
    return stat.includes(`(${comm})`) && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid
  } catch { return false }
})
const gone = async (pid: number): Promise<void> => {
  for (let i = 0; i < 200 && cmdline(pid) !== ''; i++) await new Promise(resolve => setTimeout(resolve, 50))
}

/** What systemd does for Type=forking: ExecStartPre, then ExecStart, which must return only once the host is up. */
async function startUnit (t: import('ava').ExecutionContext, u: Unit): Promise<number> {
  const pre = await exec(u, u.pre)
  t.is(pre.code, 0, `ExecStartPre: ${pre.stderr}`)
  const start = await exec(u, u.start)
  t.is(start.code, 0, `ExecStart: ${start.stderr}`)
  // Active now: the mount answers and PIDFile names the live daemon.
  t.true(existsSync(path.join(u.mountpoint, 'bus/ap/apmask')))
  const pid = Number(readFileSync(u.pidFile, 'utf8').trim())
  t.regex(cmdline(pid), new RegExp(`mount\0${u.mountpoint}\0`))
  return pid
}

for (const [file, instance] of [['apsim@.service', 'ci'], ['apsim.service', '']] as const) {
  test(`${file}: ready at start, state kept across crashes, a stale mount cleaned, a clean stop`, async t => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-unit-'))
    const u = readUnit(path.join(UNITS, file), instance, tmp)
    try {
      writeFileSync(u.topology, 'adapters:\n  - { id: 0x0b, type: CEX7, mode: cca }\n  - { id: 0x0c, type: CEX7, mode: ep11 }\nusage_domains: [5]\n')
      let pid = await startUnit(t, u)
      t.deepEqual((await fsp.readdir(path.join(u.mountpoint, 'devices/ap'))).filter(n => n.startsWith('card')), ['card0b', 'card0c'])
      await fsp.writeFile(path.join(u.mountpoint, 'bus/ap/apmask'), '-0xb')
      const mask = await fsp.readFile(path.join(u.mountpoint, 'bus/ap/apmask'), 'latin1')
      t.regex(mask, /^0xffef/)
      t.true(existsSync(u.state))

      // A crash the auto_unmount watchdog cleans up after; then Restart=on-failure.
      process.kill(pid, 'SIGKILL')
      await gone(pid)
      t.is((await exec(u, u.stopPost)).code, 0)
      pid = await startUnit(t, u)
      t.is(await fsp.readFile(path.join(u.mountpoint, 'bus/ap/apmask'), 'latin1'), mask, 'the state file kept the host')

      // A crash that takes the watchdog too leaves a stale mount: ExecStartPre detaches it.
      for (const w of children(pid, 'fusermount')) process.kill(w, 'SIGKILL')
      process.kill(pid, 'SIGKILL')
      await gone(pid)
      t.true(mounted(u.mountpoint))
      const e = await t.throwsAsync(fsp.readdir(u.mountpoint)) // stale: nobody answers
      t.true(['ENOTCONN', 'ECONNABORTED'].includes((e as NodeJS.ErrnoException).code ?? ''), String(e))
      pid = await startUnit(t, u)
      t.is(await fsp.readFile(path.join(u.mountpoint, 'bus/ap/apmask'), 'latin1'), mask)

      // systemctl stop: SIGTERM to the main pid (KillMode=mixed): unmounted, PIDFile gone.
      process.kill(pid, 'SIGTERM')
      await gone(pid)
      t.false(mounted(u.mountpoint))
      t.false(existsSync(u.pidFile))
      t.is((await exec(u, u.stopPost)).code, 0)

      // A live mount someone else started at the mountpoint makes the start fail, untouched.
      const other = await mountHost({ dir: u.mountpoint })
      try {
        const pre = await exec(u, u.pre)
        t.is(pre.code, 1)
        t.regex(pre.stderr, /is a live apsim mount/)
        t.is(other.daemon.exitCode, null)
      } finally { await other.stop() }
    } finally {
      const pid = existsSync(u.pidFile) ? Number(readFileSync(u.pidFile, 'utf8')) : undefined
      if (pid !== undefined && cmdline(pid) !== '') process.kill(pid, 'SIGTERM')
      if (mounted(u.mountpoint)) spawnSync('fusermount', ['-uz', u.mountpoint])
      rmSync(tmp, { recursive: true, force: true })
    }
  })
}
