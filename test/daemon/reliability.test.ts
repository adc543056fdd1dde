/**
 * The reliability attacks (README, "Reliability"), each through a real mount: a restore that
 * reads the mount itself, a full disk under `--state`, crafted and half-valid snapshots, the
 * bytes of `state` against `--state` after fuzzing, `apsim status` and `apsim-clean.sh` on a
 * stopped daemon. Every shell command an attack could hang runs under `timeout -s KILL`, so a
 * regression fails the test instead of hanging it.
 */
import test from 'ava'
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { apsim, isMounted, mountHost, requireFuse, run, RUN_DIR, snapshotOf, tmpDir, type Mounted } from '../helpers/mount.js'

requireFuse()

const C = 'kernel/debug/apsim'
const M = 'devices/vfio_ap/matrix'
const T = `${M}/mdev_supported_types/vfio_ap-passthrough`
const U = '62177883-f1bb-47f0-914d-32a22e3a8804'
const WRITER = fileURLToPath(new URL('../../../test/helpers/fuzz-writer.py', import.meta.url))
const CLEAN = fileURLToPath(new URL('../../../mount-scripts/apsim-clean.sh', import.meta.url))

/** A write under a watchdog: a hung daemon makes it fail (137), not the test hang. */
const guarded = (script: string): string => `timeout -s KILL 15 bash -c ${JSON.stringify(script)}`

test('attack 1: restore of a path into the mount (symlink, bind mount, /proc/self/root) is ELOOP; the mount never hangs', async t => {
  const tmp = tmpDir(t, 'apsim-rel-')
  const m = await mountHost()
  const bind = path.join(tmp, 'bind')
  try {
    const before = await snapshotOf(m)
    writeFileSync(path.join(tmp, 'good.json'), before)
    const link = path.join(tmp, 'link.json')
    await run('ln', ['-s', path.join(m.dir, C, 'state'), link])
    mkdirSync(bind)
    const b = await run('mount', ['--bind', m.dir, bind])
    t.is(b.code, 0, b.stderr)
    for (const file of [link, path.join(bind, C, 'state'), `/proc/self/root${m.dir}/${C}/state`, `${m.dir}/${C}/../apsim/state`]) {
      const r = await m.sh(guarded(`echo ${file} > ${C}/restore`))
      t.is(r.stderr, 'bash: line 1: echo: write error: Too many levels of symbolic links\n', file)
      const why = await m.sh(guarded(`cat ${C}/last_error; cat bus/ap/bindings`))
      t.regex(why.stdout, /^ELOOP: .*: this is the mount .* itself; a host cannot restore from its own tree\n12\/12 \(complete\)\n$/, file)
    }
    t.is(await snapshotOf(m), before)
    // A file outside the mount still restores.
    const ok = await m.sh(guarded(`echo ${path.join(tmp, 'good.json')} > ${C}/restore`))
    t.is(ok.code, 0, ok.stderr)
  } finally {
    if (isMounted(bind)) await run('umount', ['-l', bind])
    if ((await m.sh('timeout -s KILL 5 ls >/dev/null')).code !== 0) m.daemon.kill('SIGKILL')
    await m.stop()
  }
})

/** A host under `--state FILE` with adapters 5 and 6 for vfio_ap and mdev U; its snapshot and FILE's text. */
async function mdevHost (file: string): Promise<{ m: Mounted, before: string, saved: string }> {
  const m = await mountHost({ args: ['--state', file] })
  const r = await m.sh(`echo -5,-6 > bus/ap/apmask && echo ${U} > ${T}/create`)
  if (r.code !== 0) throw new Error(r.stderr)
  return { m, before: await snapshotOf(m), saved: readFileSync(file, 'utf8') }
}

test('attack 3: a store whose --state save fails (full disk) fails with ENOSPC, changes nothing, leaves no .tmp', async t => {
  const tmp = tmpDir(t, 'apsim-rel-')
  const fs = path.join(tmp, 'fs')
  mkdirSync(fs)
  const tm = await run('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', fs])
  t.is(tm.code, 0, tm.stderr)
  const file = path.join(fs, 'host.json')
  const host = await mdevHost(file)
  const { before, saved } = host
  let m = host.m
  try {
    const fill = `dd if=/dev/zero of=${fs}/fill bs=64k 2>/dev/null; `
    const r = await m.sh(guarded(`${fill}echo 5 > ${M}/${U}/assign_adapter; echo +5 > bus/ap/apmask; echo 8e5b9f3c-2d4a-4b6e-9c1f-0a7d3e5b8c21 > ${T}/create; cat ${M}/${U}/matrix`))
    t.is(r.stderr, [1, 1, 1].map(() => 'bash: line 1: echo: write error: No space left on device\n').join(''))
    t.is(r.stdout, '')
    const lpar = await apsim('lpar', m.dir, 'add-adapter', '9', 'CEX7', 'ep11')
    t.is(lpar.code, 1)
    t.regex(lpar.stderr, /^apsim: ENOSPC: cannot save the state file: ENOSPC: no space left on device, write\n$/)
    t.is(await snapshotOf(m), before, 'the model is as before the failed stores')
    t.is(readFileSync(file, 'utf8'), saved, 'the state file is as before')
    t.deepEqual(readdirSync(fs).sort(), ['fill', 'host.json'], 'no .tmp left behind')
    t.regex(m.log(), /"result":"ENOSPC","why":"cannot save the state file: ENOSPC/)

    // kill -9 now: the next daemon boots into what every acknowledged write left.
    m.daemon.kill('SIGKILL')
    await m.stop()
    rmSync(path.join(fs, 'fill'))
    m = await mountHost({ args: ['--state', file] })
    t.is(await snapshotOf(m), before)

    // An open file keeps working across an undone store: the same fd stores once there is room.
    const same = await m.sh(guarded(`exec 3>${M}/${U}/assign_adapter; ${fill}echo 5 >&3; rm ${fs}/fill; echo 5 >&3; cat ${M}/${U}/matrix`))
    t.is(same.stderr, 'bash: line 1: echo: write error: No space left on device\n')
    t.is(same.stdout, '05.\n')
    t.regex(readFileSync(file, 'utf8'), /"apm":"0x04/)
  } finally {
    await m.stop()
    await run('umount', ['-l', fs])
  }
})

test('attacks 4, 5, 6: crafted snapshots are refused with EINVAL naming the field; nothing changes, not even the state file', async t => {
  const tmp = tmpDir(t, 'apsim-rel-')
  const file = path.join(tmp, 'host.json')
  const { m, before, saved } = await mdevHost(file)
  try {
    const craft = (name: string, change: (s: any) => void): string => {
      const s = JSON.parse(before)
      change(s)
      const f = path.join(tmp, `${name}.json`)
      writeFileSync(f, JSON.stringify(s))
      return f
    }
    const cases: Array<[string, string]> = [
      [craft('escape', s => { s.vfio.mdevs[0].iommuGroup = '../../../../etc' }), 'EINVAL: state: vfio.mdevs[0].iommuGroup: must be an integer between 0 and 2147483647, got "../../../../etc"'],
      [craft('half', s => { s.topology.kernel = '5.10'; delete s.klog }), 'EINVAL: state: klog: must be a list, got undefined'],
      [craft('domain', s => { s.bus.apDomain = {} }), 'EINVAL: state: bus.apDomain: must be an integer between -1 and 255, got {}'],
      [craft('proto', s => { s.vfio.mdevs[0].uuid = '__proto__' }), 'EINVAL: state: vfio.mdevs[0].uuid: must be a UUID, got "__proto__"']
    ]
    for (const [f, why] of cases) {
      const r = await m.sh(guarded(`echo ${f} > ${C}/restore`))
      t.is(r.stderr, 'bash: line 1: echo: write error: Invalid argument\n', f)
      t.is((await m.sh(`cat ${C}/last_error`)).stdout, `${why}\n`)
      const cli = await apsim('restore', m.dir, f)
      t.is(cli.stderr, `apsim: ${why}\n`)
      t.is(await snapshotOf(m), before, f)
      t.is(readFileSync(file, 'utf8'), saved, f)
    }
    const hostname = await m.sh(`cat ${M}/${U}/iommu_group/hostname; readlink ${M}/${U}/iommu_group; ls -a ${M} | grep -c proto`)
    t.is(hostname.stdout, '../../../../kernel/iommu_groups/0\n0\n')
    t.regex(hostname.stderr, /iommu_group\/hostname: No such file or directory/)
    t.is(JSON.parse(readFileSync(file, 'utf8')).topology.kernel, 'newest')
  } finally {
    await m.stop()
  }
})

test('attack 7: after a fuzz run, `state` and --state are the same bytes, and they restore to themselves', async t => {
  const tmp = tmpDir(t, 'apsim-rel-')
  const file = path.join(tmp, 'host.json')
  const m = await mountHost({ args: ['--state', file] })
  try {
    const files = ['devices/ap/card05/05.0004/driver_override', 'devices/ap/card04/uevent', 'bus/ap/uevent', 'devices/ap/card06/06.00ab/driver_override']
    const f = await run('python3', [WRITER, m.dir, '7', '3', ...files], { cwd: '/' })
    t.is(f.code, 0, f.stderr)
    const state = readFileSync(path.join(m.dir, C, 'state'))
    const saved = readFileSync(file)
    t.true(state.equals(saved), 'cat state = the state file, byte for byte')
    t.true(state.every(b => b === 0x0a || (b >= 0x20 && b < 0x7f)), 'ASCII')
    t.regex(state.toString('latin1'), /\\u00[89a-f][0-9a-f]/, 'the fuzz left bytes above 0x7f in the host')
    const copy = path.join(tmp, 'copy.json')
    copyFileSync(file, copy)
    t.is((await m.sh(`echo ${copy} > ${C}/restore`)).code, 0)
    t.true(readFileSync(path.join(m.dir, C, 'state')).equals(state), 'snapshot -> restore -> snapshot')
  } finally {
    await m.stop()
  }
})

test('attack 7: apsim status on a stopped daemon says hung and exits 1; apsim-clean.sh recovers the mount', async t => {
  const m = await mountHost()
  const pid = m.daemon.pid!
  try {
    process.kill(pid, 'SIGSTOP')
    const s = await apsim('status', m.dir)
    t.is(s.code, 1)
    t.regex(s.stdout, /is mounted \(hung, pid \d+\)/)
    t.regex(s.stderr, /^apsim: the daemon does not answer/)
    const c = await run('bash', [CLEAN, m.dir], { cwd: '/', env: { ...process.env, APSIM_RUN_DIR: RUN_DIR, LC_ALL: 'C' } })
    t.is(c.code, 0, c.stderr)
    t.regex(c.stderr, /is a hung apsim mount \(daemon pid \d+ stopped\); aborting its connection/)
    t.false(isMounted(m.dir))
    t.false(existsSync(path.join(m.dir, 'bus')))
  } finally {
    try { process.kill(pid, 'SIGCONT') } catch { /* gone */ }
    await m.stop()
  }
})

// ---------------------------------------------------------------------------------------
// What the attack did not reach

const FILE_OPS = fileURLToPath(new URL('../../../test/helpers/file-ops.py', import.meta.url))
/** Where the mount answers otherwise than sysfs (README, "What real clients see differently"). */
const NOT_SYSFS: Record<string, string> = {
  listxattr: 'ENOTSUP',
  'getxattr user.x': 'ENOTSUP',
  'getxattr security.selinux': 'ENOTSUP',
  'mmap MAP_PRIVATE': 'ok'
}

test('mmap, SEEK_DATA/SEEK_HOLE, xattrs, flock and fcntl locks on an attribute answer as sysfs does (differences listed)', async t => {
  const m = await mountHost()
  try {
    const sysfs = await run('python3', [FILE_OPS, '/sys/devices/system/cpu/online'])
    t.is(sysfs.code, 0, sysfs.stderr)
    const expected = sysfs.stdout.split('\n').filter(l => l !== '').map(l => {
      const op = l.slice(0, l.lastIndexOf(' '))
      return NOT_SYSFS[op] !== undefined ? `${op} ${NOT_SYSFS[op]}` : l
    })
    t.true(expected.includes('lseek SEEK_HOLE 0 ok:4096') && expected.includes('mmap MAP_SHARED ENODEV'), sysfs.stdout)
    const r = await run('python3', [FILE_OPS, path.join(m.dir, 'bus/ap/ap_domain')])
    t.is(r.code, 0, r.stderr)
    t.deepEqual(r.stdout.split('\n').filter(l => l !== ''), expected)
    t.is((await m.sh('cat bus/ap/bindings')).stdout, '12/12 (complete)\n', 'the daemon still answers')
  } finally {
    await m.stop()
  }
})

/** The daemon's resident set, from /proc. */
const rss = (pid: number): number => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024

test('RSS does not grow over 100k operations after a warm-up', async t => {
  t.timeout(300000)
  const m = await mountHost()
  try {
    t.is((await m.sh(`echo -5,-6 > bus/ap/apmask && echo ${U} > ${T}/create && echo 5 > ${M}/${U}/assign_adapter`)).code, 0)
    // One FUSE operation per call: pread on open files (direct_io), a listing, a store.
    const ops = (n: number): string => `
import os
root = ${JSON.stringify(m.dir)}
fds = [os.open(os.path.join(root, p), os.O_RDONLY) for p in ('bus/ap/ap_domain', 'devices/ap/card04/04.0004/online', '${M}/${U}/matrix', 'bus/ap/apmask')]
w = os.open(os.path.join(root, '${M}/${U}/assign_domain'), os.O_WRONLY)
u = os.open(os.path.join(root, '${M}/${U}/unassign_domain'), os.O_WRONLY)
for i in range(${n} // 10):
    for fd in fds:
        os.pread(fd, 4096, 0)
    os.listdir(os.path.join(root, 'devices/ap/card05'))
    os.close(os.open(os.path.join(root, 'bus/ap/ap_interrupts'), os.O_RDONLY))
    os.write(w, b'4')
    os.write(u, b'4')
    os.pread(fds[0], 4096, 0)
`
    const warm = await run('python3', ['-c', ops(20000)])
    t.is(warm.code, 0, warm.stderr)
    const before = rss(m.daemon.pid!)
    const r = await run('python3', ['-c', ops(100000)])
    t.is(r.code, 0, r.stderr)
    const after = rss(m.daemon.pid!)
    t.log(`daemon RSS after warm-up ${(before / 2 ** 20).toFixed(1)} MiB, after 100k operations ${(after / 2 ** 20).toFixed(1)} MiB`)
    t.true(after - before < 24 * 2 ** 20, `RSS grew by ${((after - before) / 2 ** 20).toFixed(1)} MiB`)
  } finally {
    await m.stop()
  }
})

test('thousands of mdevs: concurrent readdir while mdevs come and go sees every stable one, and the counts are exact', async t => {
  t.timeout(300000)
  const m = await mountHost()
  try {
    const n = 2000
    const uuid = (i: number): string => `${i.toString(16).padStart(8, '0')}-0000-4000-8000-000000000000`
    const create = await run('python3', ['-c', `
import os
fd = os.open(${JSON.stringify(path.join(m.dir, T, 'create'))}, os.O_WRONLY)
for i in range(${n}):
    os.write(fd, ('%08x-0000-4000-8000-000000000000' % i).encode())
`])
    t.is(create.code, 0, create.stderr)
    // Four readers list the three directories while a writer removes and re-creates the last 200.
    const churn = run('python3', ['-c', `
import os
root = ${JSON.stringify(m.dir)}
for r in range(3):
    for i in range(${n - 200}, ${n}):
        u = '%08x-0000-4000-8000-000000000000' % i
        with open(os.path.join(root, '${M}', u, 'remove'), 'w') as f: f.write('1')
    with open(os.path.join(root, '${T}', 'create'), 'w') as f:
        for i in range(${n - 200}, ${n}):
            f.write('%08x-0000-4000-8000-000000000000' % i); f.flush()
`])
    const reader = async (): Promise<string[]> => {
      const r = await run('python3', ['-c', `
import os
root = ${JSON.stringify(m.dir)}
stable = set('%08x-0000-4000-8000-000000000000' % i for i in range(${n - 200}))
for k in range(10):
    for d in ('${M}', 'bus/mdev/devices', 'kernel/iommu_groups'):
        names = set(os.listdir(os.path.join(root, d)))
        if d != 'kernel/iommu_groups':
            missing = stable - names
            if missing: print(d, 'misses', len(missing))
        elif len(names) < ${n - 200}: print(d, 'has', len(names))
`])
      return [r.stdout, r.stderr].filter(s => s !== '')
    }
    const results = await Promise.all([reader(), reader(), reader(), reader()])
    const c = await churn
    t.is(c.code, 0, c.stderr)
    t.deepEqual(results, [[], [], [], []])
    const counts = await m.sh(`ls ${M} | grep -c -- -; ls bus/mdev/devices | wc -l; ls kernel/iommu_groups | wc -l; cat ${M}/${uuid(n - 1)}/matrix | wc -c`)
    t.is(counts.stdout, `${n}\n${n}\n${n}\n0\n`)
  } finally {
    await m.stop()
  }
})
