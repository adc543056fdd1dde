/**
 * The CLI's conventions, through the real command: --version, exit 2 for usage errors (apsim's
 * own failures keep theirs), no info lines on a stderr that is not a terminal unless asked,
 * followers that end on a closed pipe while idle, --daemon log files that go with their mount,
 * and the reset verb.
 */
import test from 'ava'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { apsim, CLI, mountHost, requireFuse, run, type ShResult, withHost } from '../helpers/mount.js'

const APSIM = `"${process.execPath}" "${CLI}"`
const ALL = '0x' + 'f'.repeat(64) + '\n'

test('--version prints the package version', async t => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
  const r = await apsim('--version')
  t.deepEqual(r, { code: 0, stdout: `${pkg.version}\n`, stderr: '' })
})

test('usage errors exit 2; apsim run keeps 125 and refusals keep 1', async t => {
  for (const [args, error] of [
    [['bogus'], "error: unknown command 'bogus'"],
    [['mount'], "error: missing required argument 'dir'"],
    [['status', '--bogus', '/tmp'], "error: unknown option '--bogus'"],
    [['lpar', '/tmp', '--json', '--file'], "error: option '-f, --file <file>' argument missing"],
    [['guest'], 'Usage: apsim guest [options] [command]']
  ] as const) {
    const r = await apsim(...args)
    t.is(r.code, 2, args.join(' '))
    t.true(r.stderr.startsWith(error), `${args.join(' ')}: ${r.stderr}`)
    t.is(r.stdout, '')
  }
  t.is((await apsim('run', '--bogus', '--', 'true')).code, 125)
  const refused = await apsim('lpar', '/nonexistent-apsim-dir')
  t.deepEqual(refused, { code: 1, stdout: '', stderr: 'apsim: /nonexistent-apsim-dir is not mounted\n' })
  t.is((await apsim('help')).code, 0)
})

test('lpar add-adapter with an unknown type lists the allowed types and changes nothing', withHost(async (t, m) => {
  const before = await apsim('lpar', m.dir)
  const r = await apsim('lpar', m.dir, 'add-adapter', '9', 'CEX9', 'cca')
  t.deepEqual(r, { code: 1, stdout: '', stderr: 'apsim: EINVAL: add-adapter: type must be one of CEX4, CEX5, CEX6, CEX7, CEX8 or a raw type number, got "CEX9"\n' })
  t.is((await apsim('lpar', m.dir)).stdout, before.stdout)
}))

test('a foreground mount says nothing on a stderr that is not a terminal, unless asked', async t => {
  requireFuse()
  const quiet = await mountHost({ logLevel: false })
  try {
    t.is((await quiet.sh('echo -5 > bus/ap/apmask; echo zz > bus/ap/apmask; cat bus/ap/apmask')).stdout, '0xfb' + 'f'.repeat(62) + '\n')
  } finally {
    await quiet.stop()
  }
  t.is(quiet.log(), '')

  const verbose = await mountHost({ logLevel: false, args: ['--verbose'] })
  try {
    await verbose.sh('echo -5 > bus/ap/apmask')
  } finally {
    await verbose.stop()
  }
  t.regex(verbose.log(), /"msg":"mounted"/)
  t.regex(verbose.log(), /"store":"\/bus\/ap\/apmask","data":"-5\\n","result":"ok"/)

  // A log file is asked for: `apsim run --log F` keeps every store.
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-runlog-'))
  try {
    const log = path.join(tmp, 'daemon.log')
    const r = await apsim('run', '--env-only', '--log', log, '--', 'sh', '-c', 'echo -5 > "$APSIM_ROOT/bus/ap/apmask"')
    t.is(r.code, 0, r.stderr)
    t.regex(readFileSync(log, 'utf8'), /"store":"\/bus\/ap\/apmask","data":"-5\\n","result":"ok"/)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
})

test('apsim record prints its summary line only with --verbose off a terminal', withHost(async (t, m) => {
  const plain = await apsim('record', m.dir)
  t.is(plain.code, 0)
  t.notRegex(plain.stderr, /recorded/)
  const verbose = await apsim('record', m.dir, '--verbose')
  t.is(verbose.code, 0)
  t.regex(verbose.stderr, /recorded 3 adapters from /)
  t.is(verbose.stdout, plain.stdout)
}))

test('dmesg -w and events -f end on a closed pipe even when nothing new comes', withHost(async (t, m) => {
  // `timeout` only turns a hang into a failure; nothing here is timed.
  const dmesg = await m.sh(`timeout 60 ${APSIM} dmesg -w "$S" | head -1`)
  t.is(dmesg.code, 0, dmesg.stderr)
  t.regex(dmesg.stdout, /^\[ *\d+\.\d{6}\] .*\n$/)
  const events = await m.sh(`set -o pipefail; timeout 60 ${APSIM} events -f "$S" | { read -r line; echo "$line"; }`)
  t.is(events.code, 0, events.stderr)
  t.regex(events.stdout, /^KERNEL\[\d+\.\d{6}\] add +\/devices\/ap\/card04 \(ap\)\n$/)
  const json = await m.sh(`set -o pipefail; timeout 60 ${APSIM} dmesg -w --json "$S" | head -c 1`)
  t.is(json.code, 0, json.stderr)
  t.is(json.stdout, '{')
}))

test('--daemon log files go with their mount', async t => {
  requireFuse()
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-logs-'))
  const runDir = path.join(tmp, 'run') // this test's own /run/apsim
  const cli = async (...args: string[]): Promise<ShResult> => await run(process.execPath, [CLI, ...args], { cwd: '/', env: { ...process.env, APSIM_RUN_DIR: runDir } })
  try {
    for (let i = 0; i < 3; i++) {
      const dir = path.join(tmp, String(i), 'sys')
      const up = await cli('mount', dir, '--daemon')
      t.is(up.code, 0, up.stderr)
      const status = JSON.parse((await cli('status', dir, '--json')).stdout) as { logFile: string }
      t.is(path.dirname(status.logFile), runDir)
      t.regex(readFileSync(status.logFile, 'utf8'), /"msg":"mounted"/, 'the daemon log keeps its info lines')
      const down = await cli('umount', dir)
      t.is(down.code, 0, down.stderr)
      t.false(existsSync(status.logFile), 'removed with the mount')
    }
    t.deepEqual(readdirSync(runDir), [])
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
})

test('apsim reset and the reset file: the booted host, or a snapshot; refusals change nothing', withHost(async (t, m) => {
  const U = '62177883-f1bb-47f0-914d-32a22e3a8804'
  const setup = await m.sh(`echo -5,-6 > bus/ap/apmask && echo ${U} > devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create && ${APSIM} fault add "$S" write bus/ap/aqmask EBUSY`)
  t.is(setup.code, 0, setup.stderr)
  const r = await apsim('reset', m.dir)
  t.deepEqual(r, { code: 0, stdout: '', stderr: '' })
  t.is(await m.read('bus/ap/apmask'), ALL)
  t.false(existsSync(path.join(m.dir, 'devices/vfio_ap/matrix', U)))
  t.is((await apsim('fault', 'list', m.dir)).stdout, '')

  const snap = path.join(path.dirname(m.dir), 'snap.json')
  const s = await m.sh(`echo -6 > bus/ap/apmask && ${APSIM} snapshot "$S" > ${snap} && echo -4 > bus/ap/apmask`)
  t.is(s.code, 0, s.stderr)
  t.is((await apsim('reset', m.dir, snap)).code, 0)
  t.is(await m.read('bus/ap/apmask'), '0xfd' + 'f'.repeat(62) + '\n')

  const missing = await apsim('reset', m.dir, '/nonexistent/snap.json')
  t.is(missing.code, 1)
  t.regex(missing.stderr, /^apsim: cannot read \/nonexistent\/snap\.json: /)
  const bad = await m.sh('echo 2 > kernel/debug/apsim/reset; cat kernel/debug/apsim/last_error; cat bus/ap/apmask')
  t.is(bad.stderr, 'bash: line 1: echo: write error: Invalid argument\n')
  t.is(bad.stdout, 'EINVAL: expected 1 or the absolute path of a snapshot file, got "2"\n0xfd' + 'f'.repeat(62) + '\n')
  const shell = await m.sh('echo 1 > kernel/debug/apsim/reset && cat bus/ap/apmask')
  t.deepEqual(shell, { code: 0, stdout: ALL, stderr: '' })
}))
