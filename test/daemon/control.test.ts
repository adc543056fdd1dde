/**
 * The control plane through a real mount: every control file (`kernel/debug/apsim/`) with
 * `echo`/`cat`, and the same operations through the CLI (`apsim guest|lpar|events|dmesg|
 * snapshot|restore`), with exit codes, messages and `--json` shapes. A refused control write
 * changes nothing (the whole `state` is compared); a blocked mdev `remove` waits for
 * `guest stop` while the daemon goes on serving.
 */
import test, { type ExecutionContext } from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { apsim, CLI, requireFuse, RUN_DIR, run, withHost, type Mounted } from '../helpers/mount.js'

requireFuse()

const C = 'kernel/debug/apsim'
const U = '62177883-f1bb-47f0-914d-32a22e3a8804'
const U2 = '8e5b9f3c-2d4a-4b6e-9c1f-0a7d3e5b8c21'
const ONES = '0x' + 'f'.repeat(64)
const ZEROS = '0x' + '0'.repeat(64)
const ENV = { ...process.env, APSIM_RUN_DIR: RUN_DIR, LC_ALL: 'C' }

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

async function until (cond: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) { if (await cond()) return true; await sleep(25) }
  return await cond()
}

/** A 256-bit mask as the kernel prints it. */
function mask (ids: number[]): string {
  const bits = new Array<number>(256).fill(0)
  for (const i of ids) bits[i] = 1
  let s = '0x'
  for (let k = 0; k < 64; k++) s += (bits[4 * k] * 8 + bits[4 * k + 1] * 4 + bits[4 * k + 2] * 2 + bits[4 * k + 3]).toString(16)
  return s
}

/** `sh` that must succeed silently; returns stdout. */
async function ok (t: { is: (a: unknown, b: unknown, m?: string) => void }, m: Mounted, script: string): Promise<string> {
  const r = await m.sh(script)
  t.is(r.code, 0, `${script}: exit ${r.code}: ${r.stderr}`)
  t.is(r.stderr, '', script)
  return r.stdout
}

const state = async (m: Mounted): Promise<string> => (await m.sh(`cat ${C}/state`)).stdout

/**
 * Writes `text` to a control file in ONE write(2), as `cat FILE > lpar` does. (bash's echo and
 * printf write line by line: each line would be a store of its own.)
 */
async function catInto (m: Mounted, file: string, text: string): Promise<{ code: number, stderr: string }> {
  return await m.sh(`f=$(mktemp) && printf '%s' '${text.replace(/'/g, "'\\''")}' > $f && cat $f > ${C}/${file}; rc=$?; rm -f $f; exit $rc`)
}

/** adapters 5 and 6 to vfio_ap; mdev U with 05.0004 and control domain 4. */
const MDEV_SETUP = `echo -5,-6 > bus/ap/apmask
echo ${U} > devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create
echo 5 > devices/vfio_ap/matrix/${U}/assign_adapter
echo 4 > devices/vfio_ap/matrix/${U}/assign_domain
echo 4 > devices/vfio_ap/matrix/${U}/assign_control_domain`

const DEFAULT_LPAR = [
  'adapter 0x04 CEX5 cca configured',
  'adapter 0x05 CEX5 cca configured',
  'adapter 0x06 CEX5 accel configured',
  'usage-domains 0x04 0x47 0xab 0xff',
  'control-domains 0x04 0x47 0xab 0xff',
  ''
].join('\n')

// ---------------------------------------------------------------------------------------
// The tree

test('the control tree: root-only 0700 directory, file modes, debugfs-like sizes', withHost(async (t, m) => {
  t.is(await ok(t, m, `stat -c '%a %s %n' kernel/debug kernel/debug/apsim`), `700 0 kernel/debug\n700 0 kernel/debug/apsim\n`)
  t.is(await ok(t, m, `cd ${C} && stat -c '%a %s %F %n' dmesg kmsg uevents lpar guests state restore last_error guest`), [
    '400 0 regular empty file dmesg',
    '400 0 regular empty file kmsg',
    '400 0 regular empty file uevents',
    '600 0 regular empty file lpar',
    '600 0 regular empty file guests',
    '400 0 regular empty file state',
    '200 4096 regular file restore',
    '400 4096 regular file last_error',
    '755 0 directory guest',
    ''
  ].join('\n'))
  t.is(await ok(t, m, `cat ${C}/last_error ${C}/guests; ls ${C}/guest`), '')
}))

// ---------------------------------------------------------------------------------------
// lpar

test('lpar: cat, apsim lpar and apsim lpar --json show the machine\'s AP configuration', withHost(async (t, m) => {
  t.is(await ok(t, m, `cat ${C}/lpar`), DEFAULT_LPAR)
  const r = await apsim('lpar', m.dir)
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout, DEFAULT_LPAR)
  const j = await apsim('lpar', m.dir, '--json')
  t.is(j.code, 0, j.stderr)
  t.deepEqual(JSON.parse(j.stdout), {
    adapters: [
      { id: 4, type: 'CEX5', mode: 'cca', configured: true, checkstopped: false },
      { id: 5, type: 'CEX5', mode: 'cca', configured: true, checkstopped: false },
      { id: 6, type: 'CEX5', mode: 'accel', configured: true, checkstopped: false }
    ],
    usage_domains: [4, 0x47, 0xab, 0xff],
    control_domains: [4, 0x47, 0xab, 0xff]
  })
}))

/** Every lpar command and what the AP bus shows after it; `via` applies one batch of lines. */
async function lparCommands (t: ExecutionContext, m: Mounted, via: (lines: string) => Promise<void>): Promise<void> {
  const scans = async (): Promise<number> => Number(await ok(t, m, 'cat bus/ap/scans'))

  let n = await scans()
  await via('add-adapter 7 CEX6 ep11\nadd-usage-domain 5\nadd-control-domain 0x10\n')
  t.is(await scans(), n + 1, 'a batch is one scan')
  t.is(await ok(t, m, 'cat devices/ap/card07/raw_hwtype devices/ap/card07/type devices/ap/card07/config'), '12\nCEX6P\n1\n')
  t.is(await ok(t, m, 'ls devices/ap/card07 | grep "\\."'), '07.0004\n07.0005\n07.0047\n07.00ab\n07.00ff\n')
  t.is(await ok(t, m, 'cat bus/ap/ap_adapter_mask bus/ap/ap_usage_domain_mask bus/ap/ap_control_domain_mask'),
    `${mask([4, 5, 6, 7])}\n${mask([4, 5, 0x47, 0xab, 0xff])}\n${mask([4, 0x10, 0x47, 0xab, 0xff])}\n`)
  t.true((await ok(t, m, 'ls devices/ap/card04')).includes('04.0005\n'), 'the new usage domain on every adapter')

  n = await scans()
  await via('configure 7 off\n')
  t.is(await scans(), n + 1)
  t.is(await ok(t, m, 'cat devices/ap/card07/config devices/ap/card07/07.0004/config'), '0\n0\n')
  t.regex(await ok(t, m, `cat ${C}/lpar`), /^adapter 0x07 CEX6 ep11 deconfigured$/m)
  await via('configure 7 on\ncheckstop 7 on\n')
  t.is(await ok(t, m, 'cat devices/ap/card07/config devices/ap/card07/chkstop'), '1\n1\n')
  t.regex(await ok(t, m, `cat ${C}/lpar`), /^adapter 0x07 CEX6 ep11 configured checkstopped$/m)
  await via('checkstop 7 off\n')
  t.is(await ok(t, m, 'cat devices/ap/card07/chkstop'), '0\n')

  await via('remove-usage-domain 5\nremove-control-domain 0x10\n# a comment\n\nremove-adapter 7\n')
  t.is(await ok(t, m, 'ls -d devices/ap/card07 2>&1; ls devices/ap/card04 | grep -c "\\."'), "ls: cannot access 'devices/ap/card07': No such file or directory\n4\n")
  t.is(await ok(t, m, `cat ${C}/lpar`), DEFAULT_LPAR)

  n = await scans()
  await via('scan\n')
  t.is(await scans(), n + 1, 'scan alone is one scan')
}

test('lpar through cat: every command, a batch of lines in one write is one scan', withHost(async (t, m) => {
  await lparCommands(t, m, async lines => {
    const r = await catInto(m, 'lpar', lines)
    t.is(r.code, 0, r.stderr)
  })
}))

test('lpar through the CLI: a command as words, -f FILE and - read a batch', withHost(async (t, m) => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-lpar-'))
  let k = 0
  try {
    await lparCommands(t, m, async lines => {
      const cmds = lines.split('\n').filter(l => l.trim() !== '' && !l.startsWith('#'))
      let r
      if (cmds.length === 1) {
        r = await apsim('lpar', m.dir, ...cmds[0].split(' '))
      } else if (k++ % 2 === 0) {
        const f = path.join(tmp, `batch${k}`)
        writeFileSync(f, lines)
        r = await apsim('lpar', m.dir, '-f', f)
      } else {
        r = await run(process.execPath, [CLI, 'lpar', m.dir, '-'], { input: lines })
      }
      t.is(r.code, 0, r.stderr)
      t.is(r.stdout, '')
      t.is(r.stderr, '')
    })
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}))

const LPAR_REFUSALS: Array<[string, string, string]> = [
  // [batch, errno text of cat, last_error]
  ['bogus 1', 'Invalid argument', 'EINVAL: unknown command "bogus"; commands: add-adapter ID TYPE MODE     TYPE: CEX4..CEX8 or a raw type number; MODE: accel, cca, ep11; remove-adapter ID; configure ID on|off; checkstop ID on|off; add-usage-domain ID, remove-usage-domain ID, add-control-domain ID, remove-control-domain ID; scan'],
  ['add-adapter 4 CEX5 cca', 'File exists', 'EEXIST: adapter 4 is already in the LPAR configuration'],
  ['add-adapter 7 CEX5 hsm', 'Invalid argument', 'EINVAL: add-adapter: mode must be accel, cca or ep11, got "hsm"'],
  ['configure 9 on', 'No such device', 'ENODEV: adapter 9 is not in the LPAR configuration'],
  // all or nothing: the first two lines would succeed
  ['add-adapter 7 CEX5 cca\nadd-usage-domain 5\nremove-adapter 9', 'No such device', 'ENODEV: adapter 9 is not in the LPAR configuration'],
  ['configure 4 maybe', 'Invalid argument', 'EINVAL: expected on or off, got "maybe"'],
  ['add-usage-domain 256', 'Invalid argument', 'EINVAL: domain 256 is not in 0..255']
]

test('refused lpar writes change nothing; echo gets the errno, last_error and the CLI the reason', withHost(async (t, m) => {
  for (const [batch, errno, why] of LPAR_REFUSALS) {
    const before = await state(m)
    const r = await catInto(m, 'lpar', batch + '\n')
    t.is(r.code, 1, batch)
    t.is(r.stderr, `cat: write error: ${errno}\n`, batch)
    const last = await ok(t, m, `cat ${C}/last_error`)
    t.is(last, why + '\n', batch)
    t.is(await state(m), before, `${batch}: the state changed`)

    const c = await run(process.execPath, [CLI, 'lpar', m.dir, '-'], { input: batch + '\n' })
    t.is(c.code, 1, batch)
    t.is(c.stdout, '')
    t.is(c.stderr, `apsim: ${last}`, batch)
    t.is(await state(m), before, `${batch} (CLI): the state changed`)
  }
  // The CLI's own refusals.
  const big = await run(process.execPath, [CLI, 'lpar', m.dir, '-'], { input: 'scan\n'.repeat(1000) })
  t.is(big.code, 1)
  t.is(big.stderr, 'apsim: 5000 bytes for kernel/debug/apsim/lpar; one control write takes at most 4096 bytes\n')
  const both = await apsim('lpar', m.dir, 'scan', '-f', '/dev/null')
  t.is(both.code, 1)
  t.is(both.stderr, 'apsim: give either a command or -f FILE, not both\n')
  const empty = await apsim('lpar', m.dir, '-f', '/dev/null')
  t.is(empty.code, 1)
  t.is(empty.stderr, 'apsim: no commands to apply\n')
  const json = await apsim('lpar', m.dir, 'scan', '--json')
  t.is(json.code, 1)
  t.is(json.stderr, 'apsim: --json is for showing the configuration; a change prints nothing\n')
}))

test('a z/VM guest cannot reconfigure: EOPNOTSUPP is not a control-plane limit', withHost({ topologyYaml: 'host: zvm\nadapters: [{ id: 1, type: CEX7, mode: cca }]\nusage_domains: [1]\n' }, async (t, m) => {
  // The control plane is the machine's operator, not the guest: it may change a z/VM guest's configuration.
  const r = await apsim('lpar', m.dir, 'configure', '1', 'off')
  t.is(r.code, 0, r.stderr)
  t.is(await ok(t, m, 'cat devices/ap/card01/config'), '0\n')
  const s = await m.sh('echo 1 > devices/ap/card01/config')
  t.is(s.stderr, 'bash: line 1: echo: write error: Operation not supported\n', 'the guest itself cannot')
}))

// ---------------------------------------------------------------------------------------
// Guests

const GUEST_APCB = `${mask([5])},${mask([4])},${mask([4])}\n`

test('guests through echo and cat: start, the guest directory, its own AP bus, stop', withHost(async (t, m) => {
  await ok(t, m, MDEV_SETUP)
  await ok(t, m, `echo "start g1 ${U}" > ${C}/guests`)
  t.is(await ok(t, m, `cat ${C}/guests; ls ${C}/guest ${C}/guest/g1`), `g1 ${U}\n${C}/guest:\ng1\n\n${C}/guest/g1:\napcb\nmdev\nsys\nupdates\n`)
  t.is(await ok(t, m, `cd ${C}/guest/g1 && cat mdev apcb updates`), `${U}\n${GUEST_APCB}1\n`)
  t.is(await ok(t, m, `cat devices/vfio_ap/matrix/${U}/guest_matrix`), '05.0004\n')
  t.is(await ok(t, m, 'cat bus/ap/devices/05.0004/status'), 'in use\n')
  // The guest's own AP bus: a root for SYSFS_ROOT; its writes stay in the guest.
  const g = `${C}/guest/g1/sys`
  t.is(await ok(t, m, `ls ${g}/bus ${g}/devices`), `${g}/bus:\nap\n\n${g}/devices:\nap\n`)
  t.is(await ok(t, m, `cd ${g}/bus/ap && cat ap_adapter_mask ap_usage_domain_mask ap_control_domain_mask`), `${mask([5])}\n${mask([4])}\n${mask([4])}\n`)
  t.is(await ok(t, m, `ls ${g}/devices/ap | grep card; ls ${g}/devices/ap/card05 | grep "\\."; cat ${g}/devices/ap/card05/type`), 'card05\n05.0004\nCEX5C\n')
  t.is(await ok(t, m, `readlink -f ${g}/bus/ap/devices/05.0004`), `${m.dir}/${g}/devices/ap/card05/05.0004\n`)
  await ok(t, m, `echo -5 > ${g}/bus/ap/apmask`)
  t.is(await ok(t, m, `cat ${g}/bus/ap/apmask bus/ap/apmask`), `0xfbff${'f'.repeat(60)}\n0xf9ff${'f'.repeat(60)}\n`)
  // An assignment while the guest runs reaches it (hot plug): updates counts the APCB pushes.
  await ok(t, m, `echo 0x47 > devices/vfio_ap/matrix/${U}/assign_domain`)
  t.is(await ok(t, m, `cd ${C}/guest/g1 && cat apcb updates`), `${mask([5])},${mask([4, 0x47])},${mask([4])}\n2\n`)
  t.is(await ok(t, m, `ls ${g}/devices/ap/card05 | grep "\\."`), '05.0004\n05.0047\n')

  await ok(t, m, `echo "stop g1" > ${C}/guests`)
  t.is(await ok(t, m, `cat ${C}/guests; ls ${C}/guest; ls ${g} 2>&1 || true`), `ls: cannot access '${g}': No such file or directory\n`)
  // The shadow matrix stays (the kernel keeps shadow_apcb); the queues are no longer in use.
  t.is(await ok(t, m, `cat devices/vfio_ap/matrix/${U}/guest_matrix; cat bus/ap/devices/05.0004/status`), '05.0004\n05.0047\nassigned\n')
}))

const GUEST_REFUSALS: Array<[string, string, string]> = [
  [`start g1 ${U2}`, 'No such device', `ENODEV: no mdev ${U2}`],
  [`start g2 ${U}`, 'Device or resource busy', `EBUSY: mdev ${U} is already in use by guest g1`],
  ['start bad/name x', 'Invalid argument', 'EINVAL: guest name "bad/name": use letters, digits, \'_\', \'.\', \'-\' (at most 64)'],
  ['stop g9', 'No such file or directory', 'ENOENT: no running guest "g9"'],
  ['launch g1', 'Invalid argument', 'EINVAL: expected "start NAME UUID", "start NAME UUID se" or "stop NAME", got "launch g1\\n"']
]

test('refused guest writes change nothing; the CLI prints the reason and exits 1', withHost(async (t, m) => {
  await ok(t, m, MDEV_SETUP)
  await ok(t, m, `echo "start g1 ${U}" > ${C}/guests`)
  for (const [cmd, errno, why] of GUEST_REFUSALS) {
    const before = await state(m)
    const r = await m.sh(`echo "${cmd}" > ${C}/guests`)
    t.is(r.code, 1, cmd)
    t.is(r.stderr, `bash: line 1: echo: write error: ${errno}\n`, cmd)
    t.is(await ok(t, m, `cat ${C}/last_error`), why + '\n', cmd)
    t.is(await state(m), before, `${cmd}: the state changed`)
  }
  // A guest takes one mdev.
  await ok(t, m, `echo ${U2} > devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create`)
  const before = await state(m)
  const e = await apsim('guest', 'start', m.dir, 'g1', U2)
  t.is(e.code, 1)
  t.is(e.stderr, `apsim: EPERM: guest g1 already has mdev ${U}; a guest takes one vfio_ap mdev\n`)
  const cli: Array<[string[], string]> = [
    [['guest', 'start', m.dir, 'g2', U], `apsim: EBUSY: mdev ${U} is already in use by guest g1\n`],
    [['guest', 'start', m.dir, 'g2', '00000000-0000-0000-0000-000000000000'], 'apsim: ENODEV: no mdev 00000000-0000-0000-0000-000000000000\n'],
    [['guest', 'stop', m.dir, 'g9'], 'apsim: ENOENT: no running guest "g9"\n'],
    [['guest', 'view', m.dir, 'g9'], `apsim: no running guest "g9" on ${m.dir}\n`]
  ]
  for (const [args, msg] of cli) {
    const r = await apsim(...args)
    t.is(r.code, 1, args.join(' '))
    t.is(r.stdout, '')
    t.is(r.stderr, msg)
  }
  t.is(await state(m), before, 'the CLI refusals changed the state')
}))

test('guests through the CLI: start, list, list --json, view, stop', withHost(async (t, m) => {
  await ok(t, m, MDEV_SETUP)
  const s = await apsim('guest', 'start', m.dir, 'g1', U)
  t.is(s.code, 0, s.stderr)
  t.is(s.stdout + s.stderr, '')
  const l = await apsim('guest', 'list', m.dir)
  t.is(l.stdout, `g1 ${U}\n`)
  t.is(l.stdout, await ok(t, m, `cat ${C}/guests`), 'list = the guests file')
  const j = await apsim('guest', 'list', m.dir, '--json')
  t.deepEqual(JSON.parse(j.stdout), [{ name: 'g1', mdev: U, se: false, apcb: { apm: mask([5]), aqm: mask([4]), adm: mask([4]) }, updates: 1 }])
  const v = await apsim('guest', 'view', m.dir, 'g1')
  t.is(v.code, 0, v.stderr)
  t.is(v.stdout, `${m.dir}/${C}/guest/g1/sys\n`)
  t.deepEqual(JSON.parse((await apsim('guest', 'view', m.dir, 'g1', '--json')).stdout), { name: 'g1', sysfsRoot: `${m.dir}/${C}/guest/g1/sys` })
  // What SYSFS_ROOT-aware tools (lszcrypt) see under it.
  const r = await run('bash', ['-c', `R=$(node ${CLI} guest view ${m.dir} g1) && ls $R/devices/ap | grep card && cat $R/bus/ap/ap_adapter_mask`], { env: ENV })
  t.is(r.stdout, `card05\n${mask([5])}\n`, r.stderr)

  const st = await apsim('guest', 'stop', m.dir, 'g1')
  t.is(st.code, 0, st.stderr)
  t.is(st.stdout + st.stderr, '')
  t.is((await apsim('guest', 'list', m.dir)).stdout, '')
  t.deepEqual(JSON.parse((await apsim('guest', 'list', m.dir, '--json')).stdout), [])
}))

test('remove of an mdev a guest holds blocks until guest stop; the daemon serves meanwhile', withHost(async (t, m) => {
  await ok(t, m, MDEV_SETUP)
  t.is((await apsim('guest', 'start', m.dir, 'g1', U)).code, 0)
  const writer = spawn('bash', ['-c', `echo 1 > ${m.dir}/devices/vfio_ap/matrix/${U}/remove`], { stdio: ['ignore', 'pipe', 'pipe'] })
  let werr = ''
  writer.stderr!.setEncoding('utf8').on('data', (d: string) => { werr += d })
  const exited = new Promise<number | null>(resolve => writer.on('exit', code => resolve(code)))
  try {
    // The kernel asks the user (QEMU) to release the device and takes the guest's resources away.
    t.true(await until(async () => (await m.dmesg()).includes(`vfio_ap_mdev ${U}: Relaying device request to user (#0)`)), 'the request reached the model')
    await sleep(300)
    t.is(writer.exitCode, null, 'the remove still waits')
    // Everything else is served meanwhile.
    t.is(await ok(t, m, 'cat bus/ap/apmask'), `${mask([...Array(256).keys()].filter(i => i !== 5 && i !== 6))}\n`)
    t.is(await ok(t, m, `cat ${C}/guest/g1/apcb`), `${ZEROS},${ZEROS},${ZEROS}\n`, 'the guest lost the devices')
    t.false((await ok(t, m, `ls devices/vfio_ap/matrix/${U}`)).split('\n').includes('remove'), 'remove is gone while it waits')
    t.is((await apsim('guest', 'list', m.dir)).stdout, `g1 ${U}\n`)
    t.is((await apsim('lpar', m.dir, 'scan')).code, 0, 'control writes too')
    t.is(writer.exitCode, null, 'still waiting')

    const s = await apsim('guest', 'stop', m.dir, 'g1')
    t.is(s.code, 0, s.stderr)
    t.is(await exited, 0, `the remove completed: ${werr}`)
    t.is(werr, '')
    t.is(await ok(t, m, 'ls devices/vfio_ap/matrix'), 'driver\nfeatures\nmdev_supported_types\npower\nsubsystem\nuevent\n')
    t.regex(await m.dmesg(), new RegExp(`vfio_ap_mdev ${U}: Removing from iommu group 0\n$`))
    t.is(await ok(t, m, 'cat bus/ap/devices/05.0004/status'), 'unassigned\n')
  } finally {
    if (writer.exitCode === null) writer.kill('SIGKILL')
  }
}))

// ---------------------------------------------------------------------------------------
// Events and the kernel log

interface Follower { out: () => string, exit: Promise<{ code: number | null, signal: NodeJS.Signals | null }>, child: ChildProcess, err: () => string }

function follow (...args: string[]): Follower {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: '/', env: ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d })
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d })
  const exit = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => child.on('exit', (code, signal) => resolve({ code, signal })))
  return { out: () => out, err: () => err, exit, child }
}

test('apsim events: udevadm-monitor lines, -p properties, --json records = the uevents file', withHost(async (t, m) => {
  const file = await ok(t, m, `cat ${C}/uevents`)
  const records = file.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as { seq: number, usec: number, action: string, devpath: string, subsystem: string, env: Array<[string, string]> })
  t.true(records.length > 20)
  const j = await apsim('events', m.dir, '--json')
  t.is(j.code, 0, j.stderr)
  t.deepEqual(JSON.parse(j.stdout), records)
  const r = await apsim('events', m.dir)
  const lines = r.stdout.split('\n').slice(0, -1)
  t.is(lines.length, records.length)
  const stamp = (usec: number): string => `${Math.floor(usec / 1e6)}.${String(usec % 1e6).padStart(6, '0')}`
  t.is(lines[0], `KERNEL[${stamp(records[0].usec)}] add      /devices/ap/card04 (ap)`)
  lines.forEach((l, i) => t.is(l, `KERNEL[${stamp(records[i].usec)}] ${records[i].action.padEnd(8)} ${records[i].devpath} (${records[i].subsystem})`))
  const p = await apsim('events', m.dir, '--property')
  t.true(p.stdout.startsWith(`KERNEL[${stamp(records[0].usec)}] add      /devices/ap/card04 (ap)\nACTION=add\nDEVPATH=/devices/ap/card04\nSUBSYSTEM=ap\n` +
    records[0].env.map(([k, v]) => `${k}=${v}\n`).join('') + `SEQNUM=${records[0].seq}\n\n`), p.stdout.slice(0, 400))
  t.is((await apsim('events', m.dir, '-p')).stdout, p.stdout)
}))

test('apsim events -f follows live; -p shows APMASK; SIGINT ends it cleanly', withHost(async (t, m) => {
  const f = follow('events', m.dir, '-f', '-p')
  try {
    t.true(await until(() => f.out().includes('(ap)\n')), 'the events so far')
    const n = f.out().length
    await ok(t, m, 'echo -5 > bus/ap/apmask')
    const expected = new RegExp(String.raw`^KERNEL\[\d+\.\d{6}\] change   /devices/ap \(ap\)\nACTION=change\nDEVPATH=/devices/ap\nSUBSYSTEM=ap\n` +
      String.raw`APMASK=0xfbf{62}

SEQNUM=\d+

`, 'm')
    t.true(await until(() => expected.test(f.out().slice(n))), f.out().slice(n))
    // Each event once: the follower prints by sequence number.
    const again = f.out().length
    await sleep(350)
    t.is(f.out().length, again, 'nothing printed twice')
    f.child.kill('SIGINT')
    t.deepEqual(await f.exit, { code: 0, signal: null })
    t.is(f.err(), '')
  } finally {
    f.child.kill('SIGKILL')
  }
}))

test('apsim events -f --json prints one record per line as they come', withHost(async (t, m) => {
  const f = follow('events', m.dir, '-f', '--json')
  try {
    t.true(await until(() => f.out().includes('\n')))
    await ok(t, m, 'echo -4 > bus/ap/apmask')
    t.true(await until(() => f.out().includes('"APMASK"')))
    const recs = f.out().trim().split('\n').map(l => JSON.parse(l) as { seq: number, action: string, devpath: string, env: Array<[string, string]> })
    t.deepEqual(recs.map(r => r.seq), [...recs.keys()].map(i => i + 1), 'every record, once, in order')
    t.deepEqual(recs.filter(r => r.env.some(([k]) => k === 'APMASK')).map(r => [r.action, r.devpath, r.env]),
      [['change', '/devices/ap', [['APMASK', `${mask([...Array(256).keys()].filter(i => i !== 4))}\n`]]]])
    f.child.kill('SIGTERM')
    t.is((await f.exit).code, 0)
  } finally {
    f.child.kill('SIGKILL')
  }
}))

test('apsim dmesg -w follows the kernel log; --json has the kmsg records', withHost(async (t, m) => {
  const j = await apsim('dmesg', m.dir, '--json')
  t.is(j.code, 0, j.stderr)
  const kmsg = (await ok(t, m, `cat ${C}/kmsg`)).split('\n').filter(l => l !== '').map(l => JSON.parse(l) as unknown)
  t.deepEqual(JSON.parse(j.stdout), kmsg)
  t.like(kmsg[0], { seq: 1, level: 'info', text: 'vfio_ap matrix: MDEV: Registered' })

  const f = follow('dmesg', m.dir, '-w')
  const fj = follow('dmesg', m.dir, '--follow', '--json')
  try {
    t.true(await until(() => f.out().includes('MDEV: Registered\n') && fj.out().includes('MDEV: Registered')))
    await ok(t, m, `echo ${U} > devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create`)
    t.true(await until(() => f.out().includes(`vfio_ap_mdev ${U}: Adding to iommu group 0\n`)), f.out())
    t.is(f.out(), await m.dmesg(), 'the same text as the dmesg file')
    t.true(await until(() => fj.out().includes('Adding to iommu group')))
    t.like(JSON.parse(fj.out().trim().split('\n').at(-1) ?? ''), { seq: 2, level: 'info', text: `vfio_ap_mdev ${U}: Adding to iommu group 0` })
  } finally {
    f.child.kill('SIGINT')
    fj.child.kill('SIGINT')
  }
  t.is((await f.exit).code, 0)
  t.is((await fj.exit).code, 0)
}))

test('a follower exits cleanly when the mount goes away, and when its reader goes (SIGPIPE)', withHost(async (t, m) => {
  const head = await run('bash', ['-c', `set -o pipefail; node ${CLI} events ${m.dir} | head -1`], { env: ENV })
  t.is(head.code, 0, head.stderr)
  t.is(head.stderr, '')
  t.regex(head.stdout, /^KERNEL\[\d+\.\d{6}\] add {6}\/devices\/ap\/card04 \(ap\)\n$/)
  // A follower notices a closed pipe at its next write, as udevadm monitor does.
  // The follower only notices at a write after `head` has gone, so keep making events (mask
  // flips) until it has exited: however slowly it starts, one of them reaches it.
  const piped = run('bash', ['-c', `set -o pipefail; timeout 60 node ${CLI} events ${m.dir} -f | head -1`], { env: ENV })
  let exited = false
  void piped.then(() => { exited = true })
  for (let i = 0; i < 200 && !exited; i++) {
    await ok(t, m, i % 2 === 0 ? 'echo -5 > bus/ap/apmask' : 'echo +5 > bus/ap/apmask')
    await sleep(250)
  }
  const p = await piped
  t.is(p.code, 0, `follow into a closed pipe: ${p.stderr}`)

  const f = follow('events', m.dir, '-f')
  const d = follow('dmesg', m.dir, '-w')
  t.true(await until(() => f.out() !== '' && d.out() !== ''))
  await m.stop()
  const [fe, de] = await Promise.all([f.exit, d.exit])
  t.deepEqual(fe, { code: 0, signal: null })
  t.deepEqual(de, { code: 0, signal: null })
  t.is(f.err(), `apsim: ${m.dir} is no longer mounted\n`)
}))

// ---------------------------------------------------------------------------------------
// Snapshots

test('state and apsim snapshot are the same JSON; restore through echo and the CLI; refused restores change nothing', withHost(async (t, m) => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-snap-'))
  try {
    const s0 = await apsim('snapshot', m.dir)
    t.is(s0.code, 0, s0.stderr)
    t.is(s0.stdout, await state(m))
    t.like(JSON.parse(s0.stdout), { format: 'apsim-state', version: 1, vfio: { mdevs: [] } })
    const first = path.join(tmp, 'first.json')
    writeFileSync(first, s0.stdout)

    await ok(t, m, MDEV_SETUP)
    t.is((await apsim('guest', 'start', m.dir, 'g1', U)).code, 0)
    const s1 = (await apsim('snapshot', m.dir)).stdout
    const second = path.join(tmp, 'second.json')
    writeFileSync(second, s1)

    await ok(t, m, `echo ${first} > ${C}/restore`)
    t.is(await state(m), s0.stdout, 'echo PATH > restore')
    t.is(await ok(t, m, `cat bus/ap/apmask; ls devices/vfio_ap/matrix | grep -c -- - || true; cat ${C}/guests`), `${ONES}\n0\n`)

    const r = await run(process.execPath, [CLI, 'restore', m.dir, 'second.json'], { cwd: tmp })
    t.is(r.code, 0, r.stderr)
    t.is(r.stdout + r.stderr, '')
    t.is(await state(m), s1, 'apsim restore FILE (relative to the caller)')
    t.is(await ok(t, m, `cat devices/vfio_ap/matrix/${U}/matrix devices/vfio_ap/matrix/${U}/guest_matrix ${C}/guests`), `05.0004\n05.0004\ng1 ${U}\n`)

    // Refusals.
    const bad = path.join(tmp, 'bad.json')
    writeFileSync(bad, '{"format": "apsim-state", "version": 2}')
    const notJson = path.join(tmp, 'not.json')
    writeFileSync(notJson, 'hello')
    const cases: Array<[string, string]> = [
      [bad, 'EINVAL: state: version: must be one of 1, got 2'],
      [notJson, `EINVAL: ${notJson}: Unexpected token 'h', "hello" is not valid JSON`],
      [path.join(tmp, 'missing.json'), `EINVAL: ${path.join(tmp, 'missing.json')}: ENOENT: no such file or directory, realpath '${path.join(tmp, 'missing.json')}'`],
      [`${m.dir}/${C}/state`, `ELOOP: ${m.dir}/${C}/state: this is the mount ${m.dir} itself; a host cannot restore from its own tree`]
    ]
    for (const [file, why] of cases) {
      const before = await state(m)
      const e = await m.sh(`echo ${file} > ${C}/restore`)
      t.is(e.stderr, `bash: line 1: echo: write error: ${why.startsWith('ELOOP') ? 'Too many levels of symbolic links' : 'Invalid argument'}\n`, file)
      t.is(await ok(t, m, `cat ${C}/last_error`), why + '\n', file)
      t.is(await state(m), before, `${file}: the state changed`)
    }
    const c = await apsim('restore', m.dir, bad)
    t.is(c.code, 1)
    t.is(c.stderr, 'apsim: EINVAL: state: version: must be one of 1, got 2\n')
    const missing = await apsim('restore', m.dir, path.join(tmp, 'missing.json'))
    t.is(missing.code, 1)
    t.is(missing.stderr, `apsim: cannot read ${path.join(tmp, 'missing.json')}: ENOENT: no such file or directory, access '${path.join(tmp, 'missing.json')}'\n`)
    t.is(await state(m), s1)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}))

test('control commands on a directory that is not an apsim mount exit 1 and say so', async t => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-none-'))
  try {
    for (const args of [['lpar', tmp], ['guest', 'list', tmp], ['events', tmp], ['dmesg', tmp], ['snapshot', tmp], ['guest', 'start', tmp, 'g', U]]) {
      const r = await apsim(...args)
      t.is(r.code, 1, args.join(' '))
      t.is(r.stderr, `apsim: ${tmp} is not mounted\n`, args.join(' '))
    }
    const p = await apsim('lpar', '/proc')
    t.is(p.stderr, 'apsim: /proc is not an apsim mount (proc)\n')
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
})
