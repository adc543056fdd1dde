/**
 * `apsim mount DIR --state FILE`: the whole host survives the daemon. FILE is written at once
 * (from the topology) when missing, rewritten durably before every successful write(2)
 * returns, booted from when present; a corrupt FILE stops the mount and is left alone.
 * The SIGKILL test: everything a test did before `kill -9` is there after the next mount,
 * down to the last byte of `apsim snapshot`.
 */
import test from 'ava'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { apsim, isMounted, mountHost, requireFuse, snapshotOf, tmpDir, type Mounted } from '../helpers/mount.js'

requireFuse()

const C = 'kernel/debug/apsim'
const U1 = '62177883-f1bb-47f0-914d-32a22e3a8804'
const U2 = '8e5b9f3c-2d4a-4b6e-9c1f-0a7d3e5b8c21'
const U3 = 'c0ffee00-1234-4abc-8def-0123456789ab'
const M = 'devices/vfio_ap/matrix'

async function ok (t: { is: (a: unknown, b: unknown, m?: string) => void }, m: Mounted, script: string): Promise<string> {
  const r = await m.sh(script)
  t.is(r.code, 0, `${script}: exit ${r.code}: ${r.stderr}`)
  t.is(r.stderr, '', script)
  return r.stdout
}

/** What a user sees of mdevs, masks and guests. */
const VIEW = `cat bus/ap/apmask bus/ap/aqmask; ls ${M} | grep -- - || true
for u in $(ls ${M} | grep -- -); do for f in matrix guest_matrix control_domains; do echo "$u/$f:"; cat ${M}/$u/$f; done; done
cat ${C}/guests; for g in $(ls ${C}/guest); do cat ${C}/guest/$g/apcb ${C}/guest/$g/updates; done
ls bus/ap/drivers/vfio_ap | grep '\\.' || true`

/** Kills the daemon with SIGKILL and waits until the mount is gone (libfuse's auto_unmount). */
async function kill9 (m: Mounted): Promise<void> {
  m.daemon.kill('SIGKILL')
  await m.stop()
}

test('a missing state file is written at once; every successful store rewrites it, a refused one does not', async t => {
  const dir = tmpDir(t)
  const file = path.join(dir, 'host.json')
  const m = await mountHost({ args: ['--state', file] })
  try {
    t.true(existsSync(file), 'written at mount time')
    t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), JSON.parse(await snapshotOf(m)))
    t.false(existsSync(`${file}.tmp`))
    t.is((statSync(file).mode & 0o777), 0o600)

    await ok(t, m, 'echo -5 > bus/ap/apmask')
    t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), JSON.parse(await snapshotOf(m)), 'after a sysfs store')
    t.regex(readFileSync(file, 'utf8'), /"apmask":"0xfbf{62}"/)

    const before = readFileSync(file, 'utf8')
    const r = await m.sh('echo +300 > bus/ap/apmask; echo bogus > kernel/debug/apsim/lpar; echo 300 > bus/ap/ap_domain')
    t.is(r.code, 1)
    t.is(r.stderr.split('\n').filter(l => l.includes('write error')).length, 3, r.stderr)
    t.is(readFileSync(file, 'utf8'), before, 'refused stores leave the file alone')

    t.is((await apsim('lpar', m.dir, 'add-adapter', '9', 'CEX7', 'ep11')).code, 0)
    t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), JSON.parse(await snapshotOf(m)), 'after a control write')
    t.regex(readFileSync(file, 'utf8'), /"id":9,"type":"CEX7","mode":"ep11"/)

    const s = await apsim('status', m.dir)
    t.regex(s.stdout, new RegExp(`^state: ${file}$`, 'm'))
    t.is((JSON.parse((await apsim('status', m.dir, '--json')).stdout) as { stateFile: string }).stateFile, file)
  } finally {
    await m.stop()
  }
})

test('SIGKILL right after writes loses nothing: mdevs, matrix, masks, guest_matrix, guests and the whole snapshot', async t => {
  const dir = tmpDir(t)
  const file = path.join(dir, 'host.json')
  const a = await mountHost({ args: ['--state', file] })
  let before: string
  let view: string
  try {
    await ok(t, a, `echo -5,-6 > bus/ap/apmask && echo -0xab > bus/ap/aqmask
      T=${M}/mdev_supported_types/vfio_ap-passthrough
      echo ${U1} > $T/create && echo ${U2} > $T/create
      echo 5 > ${M}/${U1}/assign_adapter && echo 4 > ${M}/${U1}/assign_domain && echo 0x47 > ${M}/${U1}/assign_domain
      echo 4 > ${M}/${U1}/assign_control_domain
      echo 6 > ${M}/${U2}/assign_adapter && echo 0xab > ${M}/${U2}/assign_domain`)
    t.is((await apsim('guest', 'start', a.dir, 'g1', U1)).code, 0)
    t.is((await apsim('lpar', a.dir, 'add-usage-domain', '0x10')).code, 0)
    // The last store, then at once SIGKILL: the write returned, so the state is on disk.
    await ok(t, a, `echo 0x10 > ${M}/${U1}/assign_domain`)
    view = await ok(t, a, VIEW)
    before = await snapshotOf(a)
    await kill9(a)
  } finally {
    await a.stop()
  }
  t.false(isMounted(a.dir))
  t.regex(view, new RegExp(`${U1}/guest_matrix:\n05.0004\n05.0010\n05.0047\n`), view)
  t.regex(view, new RegExp(`g1 ${U1}\n`))

  const b = await mountHost({ args: ['--state', file] })
  try {
    t.is(await ok(t, b, VIEW), view)
    t.is(await snapshotOf(b), before, 'apsim snapshot is the same, byte for byte')
    t.regex(await b.dmesg(), new RegExp(`vfio_ap_mdev ${U1}: Adding to iommu group 0\n`), 'the kernel log survived')
    // The host goes on from there: the guest stops, a new mdev gets the next free group.
    t.is((await apsim('guest', 'stop', b.dir, 'g1')).code, 0)
    await ok(t, b, `echo ${U3} > ${M}/mdev_supported_types/vfio_ap-passthrough/create`)
    t.is(await ok(t, b, `basename $(readlink ${M}/${U3}/iommu_group)`), '2\n')
    // Timestamps go on from the state's: no record is older than its predecessor.
    const kmsg = (await ok(t, b, `cat ${C}/kmsg`)).trim().split('\n').map(l => JSON.parse(l) as { usec: number })
    for (let i = 1; i < kmsg.length; i++) t.true(kmsg[i].usec >= kmsg[i - 1].usec, `kmsg ${i}`)
    // A write and the SIGKILL in the same breath: the write(2) returned, so it is on disk.
    const r = await b.sh(`echo 0xab > ${M}/${U2}/assign_control_domain && kill -9 ${String(b.daemon.pid)}`)
    t.is(r.code, 0, r.stderr)
  } finally {
    await b.stop()
  }
  const c = await mountHost({ args: ['--state', file] })
  try {
    t.is(await ok(t, c, `cat ${M}/${U2}/control_domains; ls ${M} | grep -c -- -; cat ${C}/guests`), '00ab\n3\n')
  } finally {
    await c.stop()
  }
})

test('SIGKILL right after writes keeps zcrypt nodes and a Secure Execution guest\'s own state (state fields zcdn, guests)', async t => {
  const file = path.join(tmpDir(t), 'host.json')
  const G = `${C}/guest/pv1/sys`
  const topology = path.join(tmpDir(t), 'se.yaml')
  writeFileSync(topology, 'qci: { features: [APSC, APXA, QACT, RC8A], max_adapter_id: 63, max_domain_id: 255 }\nadapters: [{ id: 4, type: CEX8, mode: ep11 }]\nusage_domains: [4]\n')
  const a = await mountHost({ args: ['--state', file, '--topology', topology] })
  let view: string
  try {
    await ok(t, a, `echo -4 > bus/ap/apmask && echo ${U1} > ${M}/mdev_supported_types/vfio_ap-passthrough/create
      echo 4 > ${M}/${U1}/assign_adapter && echo 4 > ${M}/${U1}/assign_domain
      echo pod1 > class/zcrypt/create && echo +4 > devices/virtual/zcrypt/pod1/apmask`)
    t.is((await apsim('guest', 'start', a.dir, 'pv1', U1, '--se')).code, 0)
    await ok(t, a, `echo 1 > ${G}/devices/ap/card04/04.0004/se_bind && echo 7 > ${G}/devices/ap/card04/04.0004/se_associate`)
    view = await ok(t, a, `cat ${C}/guests devices/virtual/zcrypt/pod1/apmask ${G}/devices/ap/card04/04.0004/se_associate`)
    await kill9(a)
  } finally {
    await a.stop()
  }
  t.is(view, `pv1 ${U1} se\n0x08${'0'.repeat(62)}\nassociated 7\n`)
  const b = await mountHost({ args: ['--state', file] })
  try {
    t.is(await ok(t, b, `cat ${C}/guests devices/virtual/zcrypt/pod1/apmask ${G}/devices/ap/card04/04.0004/se_associate`), view)
  } finally {
    await b.stop()
  }
})

test('a remove that waited for guest stop is saved when it completes', async t => {
  const dir = tmpDir(t)
  const file = path.join(dir, 'host.json')
  const a = await mountHost({ args: ['--state', file] })
  try {
    await ok(t, a, `echo -5 > bus/ap/apmask && echo ${U1} > ${M}/mdev_supported_types/vfio_ap-passthrough/create && echo 5 > ${M}/${U1}/assign_adapter && echo 4 > ${M}/${U1}/assign_domain`)
    t.is((await apsim('guest', 'start', a.dir, 'g1', U1)).code, 0)
    const writer = spawn('bash', ['-c', `echo 1 > ${a.dir}/${M}/${U1}/remove`], { stdio: 'ignore' })
    const done = new Promise<number | null>(resolve => writer.on('exit', code => resolve(code)))
    await new Promise(resolve => setTimeout(resolve, 500))
    t.is(writer.exitCode, null, 'blocked')
    t.is((await apsim('guest', 'stop', a.dir, 'g1')).code, 0)
    t.is(await done, 0)
    t.deepEqual((JSON.parse(readFileSync(file, 'utf8')) as { vfio: { mdevs: unknown[] } }).vfio.mdevs, [], 'the mdev is gone from the file')
    await kill9(a)
  } finally {
    await a.stop()
  }
  const b = await mountHost({ args: ['--state', file] })
  try {
    t.is(await ok(t, b, `ls ${M} | grep -c -- - || true; cat ${C}/guests`), '0\n')
  } finally {
    await b.stop()
  }
})

test('apsim restore of an earlier snapshot brings the earlier state back, and the state file follows', async t => {
  const dir = tmpDir(t)
  const file = path.join(dir, 'host.json')
  const early = path.join(dir, 'early.json')
  const a = await mountHost({ args: ['--state', file] })
  let earlyView: string
  try {
    await ok(t, a, `echo -5 > bus/ap/apmask && echo ${U1} > ${M}/mdev_supported_types/vfio_ap-passthrough/create && echo 5 > ${M}/${U1}/assign_adapter`)
    earlyView = await ok(t, a, VIEW)
    writeFileSync(early, await snapshotOf(a))
    await ok(t, a, `echo 4 > ${M}/${U1}/assign_domain && echo -6 > bus/ap/apmask && echo ${U2} > ${M}/mdev_supported_types/vfio_ap-passthrough/create`)
    t.is((await apsim('guest', 'start', a.dir, 'g1', U1)).code, 0)
    t.not(await ok(t, a, VIEW), earlyView)

    const r = await apsim('restore', a.dir, early)
    t.is(r.code, 0, r.stderr)
    t.is(await ok(t, a, VIEW), earlyView)
    t.is(await snapshotOf(a), readFileSync(early, 'utf8'))
    t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), JSON.parse(readFileSync(early, 'utf8')), 'the state file has the restored host')
    await kill9(a)
  } finally {
    await a.stop()
  }
  const b = await mountHost({ args: ['--state', file] })
  try {
    t.is(await ok(t, b, VIEW), earlyView)
  } finally {
    await b.stop()
  }
})

test('a corrupt state file: mount exits 1 with the reason, mounts nothing and leaves the file alone', async t => {
  const dir = tmpDir(t)
  const cases: Array<[string, string, (f: string) => string]> = [
    ['not JSON', '{"format": "apsim-state", ', f => `apsim: state file ${f} is corrupt (not JSON: Expected double-quoted property name in JSON at position 26); not touching it\n`],
    ['not a state', '{"hello": 1}\n', f => `apsim: state file ${f} is not an apsim state (format apsim-state); not touching it\n`],
    ['a bad version', '{"format": "apsim-state", "version": 7, "topology": {}}\n', f => `apsim: state file ${f} cannot be used (state: version: must be one of 1, got 7); not touching it\n`],
    ['a bad topology', '{"format": "apsim-state", "version": 1, "topology": {"adapters": 5}}\n', f => `apsim: state file ${f} cannot be used (state: topology.adapters: must be a list); not touching it\n`]
  ]
  for (const [what, text, message] of cases) {
    const file = path.join(dir, `${what.replace(/ /g, '-')}.json`)
    writeFileSync(file, text)
    const mnt = path.join(dir, 'sys')
    for (const daemon of [false, true]) {
      const r = await apsim('mount', mnt, '--state', file, ...(daemon ? ['--daemon'] : []))
      t.is(r.code, 1, `${what}${daemon ? ' --daemon' : ''}`)
      t.is(r.stderr.split('\n').filter(l => l.startsWith('apsim: ')).join('\n') + '\n', message(file), what)
      t.false(isMounted(mnt), what)
      t.is(readFileSync(file, 'utf8'), text, `${what}: the file was touched`)
    }
  }
})

test('a state file inside the mount is refused', async t => {
  const dir = tmpDir(t)
  const mnt = path.join(dir, 'sys')
  const r = await apsim('mount', mnt, '--state', path.join(mnt, 'state.json'))
  t.is(r.code, 1)
  t.regex(r.stderr, new RegExp(`^apsim: the state file ${path.join(mnt, 'state.json')} is inside the mount ${mnt}; put it elsewhere$`, 'm'))
  t.false(isMounted(mnt))
})

test('mount --daemon --state boots from the file', async t => {
  const dir = tmpDir(t)
  const file = path.join(dir, 'host.json')
  const mnt = path.join(dir, 'sys')
  const a = await mountHost({ args: ['--state', file] })
  try {
    await ok(t, a, 'echo -4 > bus/ap/apmask')
  } finally {
    await a.stop()
  }
  const r = await apsim('mount', mnt, '--daemon', '--state', file)
  try {
    t.is(r.code, 0, r.stderr)
    t.is(readFileSync(path.join(mnt, 'bus/ap/apmask'), 'utf8'), `0xf7${'f'.repeat(62)}\n`)
    t.regex((await apsim('status', mnt)).stdout, new RegExp(`^state: ${file}$`, 'm'))
  } finally {
    const u = await apsim('umount', mnt)
    t.is(u.code, 0, u.stderr)
  }
})
