/**
 * The FUSE adapter and the CLI, through a real mount and real shell commands: the kernfs
 * file semantics of fuse.md §3, §4, §6, §7 with the exact messages users see, and the daemon
 * lifecycle of §9 (status, umount, --daemon, SIGTERM, stale mounts after SIGKILL).
 */
import { test } from '../helpers/kernel.js'
import { promises as fsp, readFileSync, readdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { apsim, CLI, mountHost, requireFuse, run, useHost, withHost, type Mounted } from '../helpers/mount.js'

requireFuse()

const mounted = (dir: string): boolean =>
  readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some(l => l.split(' ')[4] === dir)

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

async function until (cond: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) { if (await cond()) return true; await sleep(50) }
  return await cond()
}

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }

interface StoreLine { store: string, data: string, result: string }

/** The store records the daemon logged so far (one JSON line per store). */
function stores (m: Mounted): StoreLine[] {
  return m.log().split('\n').filter(l => l.includes('"store"')).map(l => JSON.parse(l) as StoreLine)
}

/** The store records after the first `n`, once at least `k` of them reached the log. */
async function storesAfter (m: Mounted, n: number, k = 1): Promise<StoreLine[]> {
  await until(() => stores(m).length >= n + k, 2000)
  return stores(m).slice(n)
}

// ---------------------------------------------------------------------------------------
// File semantics, on one shared mount

const host = useHost(test)

test.serial('stat: attributes are 4096-byte regular files with kernel modes, dirs 755, links 777, all root-owned', async t => {
  const r = await host().sh("stat -c '%s %a %F %u:%g' bus/ap/apmask bus/ap/bindings bus/ap/drivers/cex4queue/bind bus/ap bus/ap/devices/card04")
  t.is(r.stderr, '')
  t.is(r.stdout, [
    '4096 644 regular file 0:0',
    '4096 444 regular file 0:0',
    '4096 200 regular file 0:0',
    '0 755 directory 0:0',
    '0 777 symbolic link 0:0',
    ''
  ].join('\n'))
})

test.serial('stat: times are stable', async t => {
  const a = await host().sh("stat -c '%Y %Z' bus/ap/apmask devices/ap")
  await sleep(1100)
  const b = await host().sh("stat -c '%Y %Z' bus/ap/apmask devices/ap")
  t.is(a.stdout, b.stdout)
})

test.serial('reading a write-only attribute is "Permission denied", even for root', async t => {
  t.is(process.getuid?.(), 0)
  const r = await host().sh('cat bus/ap/drivers/cex4queue/bind')
  t.is(r.code, 1)
  t.is(r.stderr, 'cat: bus/ap/drivers/cex4queue/bind: Permission denied\n')
})

test.serial('writing a read-only attribute is "Permission denied" at open', async t => {
  const r = await host().sh('echo x > bus/ap/bindings')
  t.is(r.code, 1)
  t.is(r.stderr, 'bash: line 1: bus/ap/bindings: Permission denied\n')
  t.false(stores(host()).some(s => s.store === '/bus/ap/bindings'))
})

test.serial('access(2) follows DAC with root override, as on sysfs: -r and -w yes, -x no', async t => {
  const r = await host().sh('for f in bus/ap/bindings bus/ap/drivers/cex4queue/bind bus/ap/apmask; do [ -r $f ] && echo -n r; [ -w $f ] && echo -n w; [ -x $f ] && echo -n x; echo; done')
  t.is(r.stdout, 'rw\nrw\nrw\n')
})

test.serial('creating a file is "Permission denied"', async t => {
  const r = await host().sh('touch newfile')
  t.is(r.code, 1)
  t.is(r.stderr, "touch: cannot touch 'newfile': Permission denied\n")
  const p = await host().sh('echo 1 > bus/ap/newattr')
  t.is(p.stderr, 'bash: line 1: bus/ap/newattr: Permission denied\n')
})

test.serial('mkdir, rmdir, rm, mv, ln -s, ln, chmod are "Operation not permitted"', async t => {
  const cases: Array<[string, string]> = [
    ['mkdir newdir', "mkdir: cannot create directory 'newdir': Operation not permitted\n"],
    ['rmdir bus/ap/drivers/cex4queue', "rmdir: failed to remove 'bus/ap/drivers/cex4queue': Operation not permitted\n"],
    ['rm bus/ap/apmask', "rm: cannot remove 'bus/ap/apmask': Operation not permitted\n"],
    ['rm bus/ap/devices/card04', "rm: cannot remove 'bus/ap/devices/card04': Operation not permitted\n"],
    ['mv bus/ap/apmask bus/ap/apmask2', "mv: cannot move 'bus/ap/apmask' to 'bus/ap/apmask2': Operation not permitted\n"],
    ['ln -s devices/ap/card04 mylink', "ln: failed to create symbolic link 'mylink': Operation not permitted\n"],
    ['ln bus/ap/apmask hardlink', "ln: failed to create hard link 'hardlink' => 'bus/ap/apmask': Operation not permitted\n"],
    ['chmod 600 bus/ap/apmask', "chmod: changing permissions of 'bus/ap/apmask': Operation not permitted\n"]
  ]
  for (const [cmd, err] of cases) {
    const r = await host().sh(cmd)
    t.is(r.code, 1, cmd)
    t.is(r.stderr, err, cmd)
  }
  t.is((await host().sh("stat -c '%a' bus/ap/apmask")).stdout, '644\n')
})

test.serial('touch of an existing attribute succeeds (utimens), as on sysfs', async t => {
  const r = await host().sh('touch bus/ap/apmask')
  t.is(r.code, 0)
  t.is(r.stderr, '')
})

test.serial('an unknown path is "No such file or directory"', async t => {
  const r = await host().sh('cat bus/ap/nope')
  t.is(r.code, 1)
  t.is(r.stderr, 'cat: bus/ap/nope: No such file or directory\n')
  const l = await host().sh('ls devices/ap/card99')
  t.is(l.stderr, "ls: cannot access 'devices/ap/card99': No such file or directory\n")
  const n = await host().sh('cat bus/ap/apmask/x')
  t.is(n.stderr, 'cat: bus/ap/apmask/x: Not a directory\n')
  await t.throwsAsync(host().read('bus/nope/x'), { code: 'ENOENT' })
})

test.serial('cat of a directory is "Is a directory"', async t => {
  const r = await host().sh('cat bus/ap')
  t.is(r.stderr, 'cat: bus/ap: Is a directory\n')
})

test.serial('dd bs=1, head -c, wc -c and node read the same bytes as cat', async t => {
  for (const f of ['bus/ap/apmask', 'bus/ap/bindings', 'devices/ap/card04/type']) {
    const cat = await host().sh(`cat ${f}`)
    t.is(cat.code, 0, f)
    t.true(cat.stdout.length > 0 && cat.stdout.endsWith('\n'), f)
    t.is((await host().sh(`dd if=${f} bs=1 status=none`)).stdout, cat.stdout, f)
    t.is((await host().sh(`dd if=${f} bs=3 status=none`)).stdout, cat.stdout, f)
    t.is((await host().sh(`head -c 4096 ${f}`)).stdout, cat.stdout, f)
    t.is((await host().sh(`wc -c < ${f}`)).stdout, `${cat.stdout.length}\n`, f)
    t.is(await host().read(f), cat.stdout, f)
  }
})

test.serial(': > attr and truncate -s 0 succeed without a store', async t => {
  const before = await host().read('bus/ap/apmask')
  const n = stores(host()).length
  const r = await host().sh(': > bus/ap/apmask && truncate -s 0 bus/ap/apmask && echo ok')
  t.is(r.stderr, '')
  t.is(r.stdout, 'ok\n')
  t.is(await host().read('bus/ap/apmask'), before)
  t.is(stores(host()).length, n)
})

test.serial('echo >> attr (O_APPEND, offset 4096) is a normal store', async t => {
  const before = (await host().read('bus/ap/apmask')).trim()
  const n = stores(host()).length
  const ok = await host().sh(`echo -n ${before} >> bus/ap/apmask`)
  t.is(ok.code, 0)
  t.is(ok.stderr, '')
  t.like(await storesAfter(host(), n), [{ store: '/bus/ap/apmask', data: before, result: 'ok' }])
  const bad = await host().sh('echo -n 0X41 >> bus/ap/apmask')
  t.is(bad.code, 1)
  t.is(bad.stderr, 'bash: line 1: echo: write error: Invalid argument\n')
  t.is((await host().read('bus/ap/apmask')).trim(), before)
})

test.serial("a failed store's errno reaches the writer: echo, printf, /bin/echo, python, node", async t => {
  const h = host()
  const before = await h.read('bus/ap/apmask')
  const n = stores(h).length
  const cases: Array<[string, string]> = [
    ['echo 0X41 > bus/ap/apmask', 'bash: line 1: echo: write error: Invalid argument\n'],
    ['printf 0X41 > bus/ap/apmask', 'bash: line 1: printf: write error: Invalid argument\n'],
    ['/bin/echo 0X41 > bus/ap/apmask', '/bin/echo: write error: Invalid argument\n'],
    ['echo nosuchdevice > bus/ap/drivers/cex4queue/bind', 'bash: line 1: echo: write error: No such device\n']
  ]
  for (const [cmd, err] of cases) {
    const r = await h.sh(cmd)
    t.is(r.code, 1, cmd)
    t.is(r.stderr, err, cmd)
  }
  const py = await h.sh(`python3 -c "
import os
fd = os.open('bus/ap/apmask', os.O_WRONLY)
try:
    os.write(fd, b'0X41')
except OSError as e:
    print(e.errno, e.strerror)
"`)
  t.is(py.stdout, '22 Invalid argument\n')
  await t.throwsAsync(fsp.writeFile(path.join(h.dir, 'bus/ap/apmask'), '0X41'), { code: 'EINVAL' })
  t.is(await h.read('bus/ap/apmask'), before)
  const logged = await storesAfter(h, n, 6)
  t.deepEqual(logged.map(s => [s.store, s.data, s.result]), [
    ['/bus/ap/apmask', '0X41\n', 'EINVAL'],
    ['/bus/ap/apmask', '0X41', 'EINVAL'],
    ['/bus/ap/apmask', '0X41\n', 'EINVAL'],
    ['/bus/ap/drivers/cex4queue/bind', 'nosuchdevice\n', 'ENODEV'],
    ['/bus/ap/apmask', '0X41', 'EINVAL'],
    ['/bus/ap/apmask', '0X41', 'EINVAL']
  ])
})

test.serial('one write(2) of more than 4096 bytes is stored a page at a time (short writes, as kernfs)', async t => {
  const n = stores(host()).length
  const r = await host().sh(`python3 -c "
import os
fd = os.open('bus/ap/apmask', os.O_WRONLY)
try:
    print(os.write(fd, b'x' * 5000))
except OSError as e:
    print(e.errno)
"`)
  t.is(r.stdout, '22\n') // the first page is already an invalid mask
  t.like(await storesAfter(host(), n), [{ store: '/bus/ap/apmask', data: 'x'.repeat(4096), result: 'EINVAL' }])
})

test.serial('readlink shows relative targets; links resolve inside the mount', async t => {
  const h = host()
  t.is((await h.sh('readlink bus/ap/devices/card04')).stdout, '../../../devices/ap/card04\n')
  t.is((await h.sh('readlink -f bus/ap/devices/card04')).stdout, `${h.dir}/devices/ap/card04\n`)
  t.is(await fsp.readlink(path.join(h.dir, 'bus/ap/devices/card04')), '../../../devices/ap/card04')
  t.is((await h.sh('ls bus/ap/devices/card04/')).stdout, (await h.sh('ls devices/ap/card04/')).stdout)
  t.is((await h.sh('cd bus/ap/devices/card04 && pwd -P')).stdout, `${h.dir}/devices/ap/card04\n`)
  const r = await h.sh('readlink bus/ap/apmask')
  t.is(r.code, 1)
})

test.serial('ls lists (with d_type) and find traverses the whole tree', async t => {
  const h = host()
  const ls = await h.sh('ls bus/ap')
  for (const name of ['apmask', 'bindings', 'devices', 'drivers']) t.true(ls.stdout.split('\n').includes(name), name)
  t.is((await h.sh('ls -a bus/ap | head -2')).stdout, '.\n..\n')
  const links = await h.sh('find bus/ap/devices -mindepth 1 -maxdepth 1 -type l -name card04')
  t.is(links.stdout, 'bus/ap/devices/card04\n')
  const node = await fsp.readdir(path.join(h.dir, 'bus/ap'), { withFileTypes: true })
  t.true(node.find(d => d.name === 'apmask')?.isFile())
  t.true(node.find(d => d.name === 'devices')?.isDirectory())
  const find = await h.sh('find .')
  t.is(find.code, 0)
  t.is(find.stderr, '')
  const all = find.stdout.split('\n')
  for (const p of ['./bus/ap/apmask', './bus/ap/drivers/cex4queue/bind', './bus/ap/devices/card04', './devices/ap/card04', './kernel/debug/apsim/dmesg']) t.true(all.includes(p), p)
})

test.serial('statfs answers', async t => {
  const r = await host().sh("stat -f -c '%S %l' .")
  t.is(r.stdout, '4096 255\n')
})

test.serial('apsim dmesg prints the kernel log; --json parses it', async t => {
  const h = host()
  const text = await h.dmesg()
  const r = await apsim('dmesg', h.dir)
  t.is(r.code, 0)
  t.is(r.stdout, text)
  const j = await apsim('dmesg', h.dir, '--json')
  t.is(j.code, 0)
  const records = JSON.parse(j.stdout) as Array<{ text: string }>
  t.is(records.length, text.split('\n').filter(l => l !== '').length)
  for (const rec of records) t.true(text.includes(`] ${rec.text}`))
})

// ---------------------------------------------------------------------------------------
// Lifecycle, each on its own mount

test('apsim status reports a live mount, its pid, topology and counts; exit 1 once unmounted', withHost(async (t, m) => {
  const r = await apsim('status', m.dir)
  t.is(r.code, 0, r.stderr)
  t.true(r.stdout.startsWith(`apsim: ${m.dir} is mounted (live, pid ${String(m.daemon.pid)})\n`), r.stdout)
  t.regex(r.stdout, /^topology: \(default topology\)$/m)
  t.regex(r.stdout, /^cards: 3, queues: 12, mdevs: 0$/m)
  const j = await apsim('status', m.dir, '--json')
  t.like(JSON.parse(j.stdout), { dir: m.dir, mounted: true, state: 'live', pid: m.daemon.pid, cards: 3, queues: 12, mdevs: 0 })
  t.regex((JSON.parse(j.stdout) as { options: string }).options, /direct_io,entry_timeout=0,attr_timeout=1,negative_timeout=0,default_permissions,fsname=sysfs,subtype=apsim/)
  const info = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find(l => l.split(' ')[4] === m.dir)
  t.regex(info ?? '', / - fuse\.apsim sysfs /)
  await m.stop()
  const after = await apsim('status', m.dir)
  t.is(after.code, 1)
  t.is(after.stdout, `apsim: ${m.dir} is not mounted\n`)
}))

test('a topology file is used; a bad one exits non-zero with the TopologyError message', async t => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-topo-'))
  try {
    const m = await mountHost({ topologyYaml: 'adapters:\n  - { id: 1, type: CEX7, mode: ep11 }\nusage_domains: [2, 3]\n' })
    try {
      t.deepEqual((await fsp.readdir(path.join(m.dir, 'devices/ap'))).filter(n => n.startsWith('card')), ['card01'])
      t.regex((await apsim('status', m.dir)).stdout, /^cards: 1, queues: 2, mdevs: 0$/m)
    } finally { await m.stop() }

    const bad = path.join(tmp, 'bad.yaml')
    writeFileSync(bad, 'adapters:\n  - { id: 1, type: CEX9, mode: cca }\n')
    const dir = path.join(tmp, 'sys')
    const r = await apsim('mount', dir, '--topology', bad)
    t.is(r.code, 1)
    t.is(r.stderr, `apsim: ${bad}: adapters[0].type: must be one of CEX4, CEX5, CEX6, CEX7, CEX8, got "CEX9"\n`)
    t.false(mounted(dir))
    const d = await apsim('mount', dir, '--topology', bad, '--daemon')
    t.is(d.code, 1)
    t.regex(d.stderr, /adapters\[0\]\.type: must be one of/)
    t.false(mounted(dir))
  } finally { rmSync(tmp, { recursive: true, force: true }) }
})

test('SIGTERM unmounts cleanly and exits 0', withHost(async (t, m) => {
  t.true(mounted(m.dir))
  const code = new Promise<number | null>(resolve => m.daemon.once('exit', c => resolve(c)))
  m.daemon.kill('SIGTERM')
  t.is(await code, 0)
  t.false(mounted(m.dir))
  t.regex(m.log(), /"msg":"unmounted"/)
}))

test('SIGINT unmounts cleanly and exits 0, even with a shell inside the mount', withHost(async (t, m) => {
  const inside = run('bash', ['-c', 'sleep 2'], { cwd: m.dir })
  await sleep(200)
  const code = new Promise<number | null>(resolve => m.daemon.once('exit', c => resolve(c)))
  m.daemon.kill('SIGINT')
  t.is(await code, 0)
  t.false(mounted(m.dir))
  t.is((await inside).code, 0)
}))

test('apsim umount stops the daemon and waits for the mount to go', withHost(async (t, m) => {
  const code = new Promise<number | null>(resolve => m.daemon.once('exit', c => resolve(c)))
  const r = await apsim('umount', m.dir)
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout, `apsim: unmounted ${m.dir}\n`)
  t.false(mounted(m.dir))
  t.is(await code, 0)
  const again = await apsim('umount', m.dir)
  t.is(again.code, 1)
  t.is(again.stderr, `apsim: ${m.dir} is not mounted\n`)
}))

test('apsim umount finds the daemon by its command line when there is no runtime record', withHost(async (t, m) => {
  const elsewhere = mkdtempSync(path.join(os.tmpdir(), 'apsim-norun-'))
  try {
    const env = { ...process.env, APSIM_RUN_DIR: elsewhere }
    const s = await run(process.execPath, [CLI, 'status', m.dir], { cwd: '/', env })
    t.true(s.stdout.startsWith(`apsim: ${m.dir} is mounted (live, pid ${String(m.daemon.pid)})\n`), s.stdout)
    const code = new Promise<number | null>(resolve => m.daemon.once('exit', c => resolve(c)))
    const r = await run(process.execPath, [CLI, 'umount', m.dir], { cwd: '/', env })
    t.is(r.code, 0, r.stderr)
    t.is(await code, 0)
    t.false(mounted(m.dir))
  } finally { rmSync(elsewhere, { recursive: true, force: true }) }
}))

test('an external fusermount -u makes the daemon exit', withHost(async (t, m) => {
  const code = new Promise<number | null>(resolve => m.daemon.once('exit', c => resolve(c)))
  t.is((await run('fusermount', ['-uz', m.dir])).code, 0)
  t.is(await code, 0)
}))

test('a second mount on a live apsim mount is refused with a clear message', withHost(async (t, m) => {
  const r = await apsim('mount', m.dir)
  t.is(r.code, 1)
  t.is(r.stderr, `apsim: ${m.dir} is already an apsim mount (pid ${String(m.daemon.pid)}); run 'apsim umount ${m.dir}' first\n`)
  t.is((await m.sh('cat bus/ap/bindings')).code, 0)
}))

test('--daemon returns once the mount is ready; umount stops the daemon', async t => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-daemon-'))
  const dir = path.join(tmp, 'sys')
  try {
    const r = await apsim('mount', dir, '--daemon')
    t.is(r.code, 0, r.stderr)
    t.is(r.stdout, `apsim: mounted ${dir}\n`)
    t.true(mounted(dir))
    t.regex(await fsp.readFile(path.join(dir, 'bus/ap/bindings'), 'latin1'), /\n$/)
    const s = JSON.parse((await apsim('status', dir, '--json')).stdout) as { pid: number, state: string, logFile: string }
    t.is(s.state, 'live')
    t.true(alive(s.pid))
    t.regex(readFileSync(s.logFile, 'utf8'), /"msg":"mounted"/)
    const u = await apsim('umount', dir)
    t.is(u.code, 0, u.stderr)
    t.false(mounted(dir))
    t.true(await until(() => !alive(s.pid)))
    rmSync(s.logFile, { force: true })
  } finally {
    if (mounted(dir)) await run('fusermount', ['-uz', dir])
    rmSync(tmp, { recursive: true, force: true })
  }
})

/** Direct children of `pid` running `name`. */
function children (pid: number, name: string): number[] {
  const out: number[] = []
  for (const p of readdirSync('/proc').filter(n => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid && comm === name) out.push(Number(p))
    } catch { /* gone */ }
  }
  return out
}

test('after SIGKILL, the next mount at the same directory works (auto_unmount)', async t => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-kill-'))
  const dir = path.join(tmp, 'sys')
  try {
    const a = await mountHost({ dir })
    a.daemon.kill('SIGKILL')
    await a.stop()
    const b = await mountHost({ dir })
    try {
      t.is((await b.sh('cat bus/ap/bindings')).code, 0)
    } finally { await b.stop() }
  } finally { rmSync(tmp, { recursive: true, force: true }) }
})

test('a stale mount (daemon and watchdog SIGKILLed) is reported and cleaned by the next mount', async t => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-stale-'))
  const dir = path.join(tmp, 'sys')
  try {
    const a = await mountHost({ dir })
    const pid = a.daemon.pid!
    for (const w of children(pid, 'fusermount')) process.kill(w, 'SIGKILL')
    const exited = new Promise(resolve => a.daemon.once('exit', resolve))
    a.daemon.kill('SIGKILL')
    await exited
    t.true(mounted(dir))
    const r = await a.sh('true')
    t.not(r.code, 0) // cannot even chdir
    await t.throwsAsync(fsp.stat(dir), { code: 'ENOTCONN' })
    const s = await apsim('status', dir, '--json')
    t.is(s.code, 1)
    t.like(JSON.parse(s.stdout), { mounted: true, state: 'stale' })

    const b = await mountHost({ dir })
    try {
      t.regex(b.log(), /cleaning a stale mount/)
      t.is((await b.sh('cat bus/ap/bindings')).code, 0)
      t.is(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(l => l.split(' ')[4] === dir).length, 1)
    } finally { await b.stop() }
    t.false(mounted(dir))
    await a.stop()
  } finally {
    if (mounted(dir)) await run('fusermount', ['-uz', dir])
    rmSync(tmp, { recursive: true, force: true })
  }
})
