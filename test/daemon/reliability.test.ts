/**
 * The reliability attacks (README, "Reliability"), each through a real mount: a restore that
 * reads the mount itself, a full disk under `--state`, crafted and half-valid snapshots, the
 * bytes of `state` against `--state` after fuzzing, `apsim status` and `apsim-clean.sh` on a
 * stopped daemon. Every shell command an attack could hang runs under `timeout -s KILL`, so a
 * regression fails the test instead of hanging it.
 */
import test from 'ava'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { apsim, mountHost, requireFuse, run, RUN_DIR, type Mounted } from '../helpers/mount.js'

requireFuse()

const C = 'kernel/debug/apsim'
const M = 'devices/vfio_ap/matrix'
const T = `${M}/mdev_supported_types/vfio_ap-passthrough`
const U = '62177883-f1bb-47f0-914d-32a22e3a8804'
const WRITER = fileURLToPath(new URL('../../../test/helpers/fuzz-writer.py', import.meta.url))
const CLEAN = fileURLToPath(new URL('../../../mount-scripts/apsim-clean.sh', import.meta.url))

const mounted = (dir: string): boolean =>
  readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some(l => l.split(' ')[4] === dir)

function tmpDir (t: { teardown: (fn: () => void) => void }): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'apsim-rel-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

const snapshot = async (m: Mounted): Promise<string> => {
  const r = await apsim('snapshot', m.dir)
  if (r.code !== 0) throw new Error(`apsim snapshot: ${r.stderr}`)
  return r.stdout
}

/** A write under a watchdog: a hung daemon makes it fail (137), not the test hang. */
const guarded = (script: string): string => `timeout -s KILL 15 bash -c ${JSON.stringify(script)}`

test('attack 1: restore of a path into the mount (symlink, bind mount, /proc/self/root) is ELOOP; the mount never hangs', async t => {
  const tmp = tmpDir(t)
  const m = await mountHost()
  const bind = path.join(tmp, 'bind')
  try {
    const before = await snapshot(m)
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
    t.is(await snapshot(m), before)
    // A file outside the mount still restores.
    const ok = await m.sh(guarded(`echo ${path.join(tmp, 'good.json')} > ${C}/restore`))
    t.is(ok.code, 0, ok.stderr)
  } finally {
    if (mounted(bind)) await run('umount', ['-l', bind])
    if ((await m.sh('timeout -s KILL 5 ls >/dev/null')).code !== 0) m.daemon.kill('SIGKILL')
    await m.stop()
  }
})

test('attack 3: a store whose --state save fails (full disk) fails with ENOSPC, changes nothing, leaves no .tmp', async t => {
  const tmp = tmpDir(t)
  const fs = path.join(tmp, 'fs')
  mkdirSync(fs)
  const tm = await run('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', fs])
  t.is(tm.code, 0, tm.stderr)
  const file = path.join(fs, 'host.json')
  let m = await mountHost({ args: ['--state', file] })
  try {
    t.is((await m.sh(`echo -5,-6 > bus/ap/apmask && echo ${U} > ${T}/create`)).code, 0)
    const before = await snapshot(m)
    const saved = readFileSync(file, 'utf8')
    const fill = `dd if=/dev/zero of=${fs}/fill bs=64k 2>/dev/null; `
    const r = await m.sh(guarded(`${fill}echo 5 > ${M}/${U}/assign_adapter; echo +5 > bus/ap/apmask; echo 8e5b9f3c-2d4a-4b6e-9c1f-0a7d3e5b8c21 > ${T}/create; cat ${M}/${U}/matrix`))
    t.is(r.stderr, [1, 1, 1].map(() => 'bash: line 1: echo: write error: No space left on device\n').join(''))
    t.is(r.stdout, '')
    const lpar = await apsim('lpar', m.dir, 'add-adapter', '9', 'CEX7', 'ep11')
    t.is(lpar.code, 1)
    t.regex(lpar.stderr, /^apsim: ENOSPC: cannot save the state file: ENOSPC: no space left on device, write\n$/)
    t.is(await snapshot(m), before, 'the model is as before the failed stores')
    t.is(readFileSync(file, 'utf8'), saved, 'the state file is as before')
    t.deepEqual(readdirSync(fs).sort(), ['fill', 'host.json'], 'no .tmp left behind')
    t.regex(m.log(), /"result":"ENOSPC","why":"cannot save the state file: ENOSPC/)

    // kill -9 now: the next daemon boots into what every acknowledged write left.
    m.daemon.kill('SIGKILL')
    await m.stop()
    rmSync(path.join(fs, 'fill'))
    m = await mountHost({ args: ['--state', file] })
    t.is(await snapshot(m), before)

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
  const tmp = tmpDir(t)
  const file = path.join(tmp, 'host.json')
  const m = await mountHost({ args: ['--state', file] })
  try {
    t.is((await m.sh(`echo -5,-6 > bus/ap/apmask && echo ${U} > ${T}/create`)).code, 0)
    const before = await snapshot(m)
    const saved = readFileSync(file, 'utf8')
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
      t.is(await snapshot(m), before, f)
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
  const tmp = tmpDir(t)
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
    t.false(mounted(m.dir))
    t.false(existsSync(path.join(m.dir, 'bus')))
  } finally {
    try { process.kill(pid, 'SIGCONT') } catch { /* gone */ }
    await m.stop()
  }
})
