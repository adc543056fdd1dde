/**
 * zcrypt's multiple device nodes through the mount, as the Kubernetes crypto device plugin
 * drives them: `echo NAME > /sys/class/zcrypt/create`, set the node's masks, hand the
 * `/dev/NAME` node to a container, `echo NAME > /sys/class/zcrypt/destroy`.
 * Default topology (fixture TG), newest profile unless APSIM_KERNEL says otherwise.
 */
import { rmSync, writeFileSync } from 'node:fs'
import { KERNEL, test } from '../helpers/kernel.js'
import { apsim, requireFuse, useHost } from '../helpers/mount.js'
import { STRERROR } from '../helpers/shell.js'
import { profile } from '../../lib/profiles.js'

interface Uevent { seq: number, action: string, devpath: string, subsystem: string, env: Array<[string, string]> }

const Z = 'class/zcrypt'
const V = 'devices/virtual/zcrypt'
const ZERO = '0x' + '0'.repeat(64) + '\n'
const err = (errno: keyof typeof STRERROR): string => `bash: line 1: echo: write error: ${STRERROR[errno]}\n`
const ADMASK = profile(KERNEL)?.zcdnAdmask === true

test.before('root and /dev/fuse are available (fails, never skips)', () => { requireFuse() })
const host = useHost(test)

async function ok (script: string): Promise<string> {
  const r = await host().sh(script)
  if (r.code !== 0 || r.stderr !== '') throw new Error(`${script}: exit ${r.code}: ${r.stderr}`)
  return r.stdout
}

async function eventsAfter (script: string): Promise<{ stderr: string, events: Uevent[] }> {
  const m = host()
  const all = async (): Promise<Uevent[]> => (await m.read('kernel/debug/apsim/uevents')).split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Uevent)
  const last = (await all()).at(-1)?.seq ?? 0
  const r = await m.sh(script)
  return { stderr: r.stderr, events: (await all()).filter(e => e.seq > last) }
}

test.serial('/sys/class/zcrypt has create and destroy (0600 without a show: a read is EIO); z90crypt is a misc device', async t => {
  t.is(await ok(`ls ${Z}`), 'create\ndestroy\n')
  t.is(await ok(`stat -c '%a %n' ${Z}/create ${Z}/destroy`), `600 ${Z}/create\n600 ${Z}/destroy\n`)
  const r = await host().sh(`cat ${Z}/create`)
  t.is(r.stderr, `cat: ${Z}/create: ${STRERROR.EIO}\n`)
  t.is(await ok('readlink class/misc/z90crypt; cat class/misc/z90crypt/dev class/misc/z90crypt/uevent; readlink class/misc/z90crypt/subsystem'),
    '../../devices/virtual/misc/z90crypt\n10:63\nMAJOR=10\nMINOR=63\nDEVNAME=z90crypt\n../../../../class/misc\n')
})

test.serial('create: the node, its links and attributes, and an add uevent; destroy: a remove uevent', async t => {
  const c = await eventsAfter(`echo kube_c1 > ${Z}/create`)
  t.is(c.stderr, '')
  t.deepEqual(c.events.map(e => [e.action, e.devpath, e.subsystem, e.env]), [['add', `/${V}/kube_c1`, 'zcrypt', [['MAJOR', '245'], ['MINOR', '0'], ['DEVNAME', 'kube_c1']]]])
  t.is(await ok(`ls ${Z}; readlink ${Z}/kube_c1`), 'create\ndestroy\nkube_c1\n../../devices/virtual/zcrypt/kube_c1\n')
  t.is(await ok(`ls ${Z}/kube_c1/`), `${ADMASK ? 'admask\n' : ''}apmask\naqmask\ndev\nioctlmask\npower\nsubsystem\nuevent\n`)
  t.is(await ok(`cd ${Z}/kube_c1 && cat dev uevent ioctlmask apmask aqmask && readlink subsystem && stat -c %a apmask`),
    `245:0\nMAJOR=245\nMINOR=0\nDEVNAME=kube_c1\n${ZERO}${ZERO}${ZERO}../../../../class/zcrypt\n644\n`)
  const d = await eventsAfter(`echo kube_c1 > ${Z}/destroy`)
  t.is(d.stderr, '')
  t.deepEqual(d.events.map(e => [e.action, e.devpath, e.env]), [['remove', `/${V}/kube_c1`, [['MAJOR', '245'], ['MINOR', '0'], ['DEVNAME', 'kube_c1']]]])
  t.is(await ok(`ls ${Z}; ls ${V}`), 'create\ndestroy\n')
})

test.serial('naming: blanks trimmed, an empty name gives zcrypt_MINOR, 31 characters kept, / stored as !', async t => {
  await ok(`echo "  padded  " > ${Z}/create; echo > ${Z}/create; echo ${'n'.repeat(40)} > ${Z}/create; echo a/b > ${Z}/create`)
  t.is(await ok(`ls ${V}`), ['a!b', `${'n'.repeat(31)}`, 'padded', 'zcrypt_1'].join('\n') + '\n')
  t.is(await ok(`cat ${V}/a!b/uevent`), 'MAJOR=245\nMINOR=3\nDEVNAME=a/b\n')
  await ok(`for n in padded zcrypt_1 ${'n'.repeat(31)} 'a!b'; do echo "$n" > ${Z}/destroy; done`)
  t.is(await ok(`ls ${V}`), '')
})

test.serial('refusals: an existing name (EEXIST), a missing node (ENOENT), the 257th node (ENOSPC); each changes nothing', async t => {
  await ok(`echo p1 > ${Z}/create`)
  const dup = await eventsAfter(`echo p1 > ${Z}/create`)
  t.is(dup.stderr, err('EEXIST'))
  t.deepEqual(dup.events, [])
  t.is((await host().sh(`echo p2 > ${Z}/destroy`)).stderr, err('ENOENT'))
  await ok(`for i in $(seq 255); do echo > ${Z}/create; done`)
  const full = await eventsAfter(`echo p3 > ${Z}/create`)
  t.is(full.stderr, err('ENOSPC'))
  t.deepEqual(full.events, [])
  t.is(await ok(`ls ${V} | wc -l`), '256\n')
  await ok(`for n in $(ls ${V}); do echo $n > ${Z}/destroy; done`)
  t.is(await ok(`ls ${V}`), '')
})

test.serial('masks: the bus/ap/apmask grammar (+/- terms and ranges, absolute hex), EINVAL for bad input that changes nothing', async t => {
  await ok(`echo pod > ${Z}/create`)
  const P = `${V}/pod`
  await ok(`echo +4-5,+0x47 > ${P}/apmask`)
  t.is(await ok(`cat ${P}/apmask`), '0x0c00000000000000010000000000000000000000000000000000000000000000\n')
  await ok(`echo -5 > ${P}/apmask; echo 0x0800 > ${P}/aqmask; echo 0xffffffff > ${P}/ioctlmask`)
  t.is(await ok(`cat ${P}/apmask ${P}/aqmask ${P}/ioctlmask`),
    `0x0800000000000000010000000000000000000000000000000000000000000000\n0x0800${'0'.repeat(60)}\n0xffffffff${'0'.repeat(56)}\n`)
  for (const bad of ['+256', '+5-4', 'zz', '0x1g']) {
    t.is((await host().sh(`echo ${bad} > ${P}/apmask`)).stderr, err('EINVAL'), bad)
  }
  t.is(await ok(`cat ${P}/apmask`), '0x0800000000000000010000000000000000000000000000000000000000000000\n', 'unchanged')
  if (ADMASK) {
    await ok(`echo +0xab > ${P}/admask`)
    t.is(await ok(`cat ${P}/admask`), `0x${'0'.repeat(42)}1${'0'.repeat(21)}\n`)
  }
  await ok(`echo pod > ${Z}/destroy`)
})

test.serial('apsim snapshot / restore keeps the nodes and their masks', async t => {
  const m = host()
  await ok(`echo keep > ${Z}/create; echo +6 > ${V}/keep/apmask`)
  const snap = await apsim('snapshot', m.dir)
  t.is(snap.code, 0, snap.stderr)
  const file = `/tmp/apsim-zcdn-${process.pid}.json`
  writeFileSync(file, snap.stdout)
  await ok(`echo keep > ${Z}/destroy`)
  const r = await apsim('restore', m.dir, file)
  t.is(r.code, 0, r.stderr)
  rmSync(file)
  t.is(await ok(`cat ${V}/keep/apmask ${V}/keep/dev`), `0x02${'0'.repeat(62)}\n245:0\n`)
})
