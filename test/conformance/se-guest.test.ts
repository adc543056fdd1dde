/**
 * A Secure Execution guest through the mount: `apsim guest start DIR NAME UUID --se`, then what
 * pvapconfig does inside the guest (bind every EP11 and accelerator queue, associate the EP11
 * ones with a secret index) with `echo` on the guest's own sysfs, and the refusals on the way.
 *
 * lszcrypt is not available on this machine (s390-tools is packaged for s390x only), so its
 * SESTAT column is checked through the bytes it reads: `bus/ap/features` must contain APSB
 * (ap_bus_has_SB_support) and bits 16-17 of each queue's `ap_functions` (EXTRACT_BS_BITS:
 * 0 usable, 1 bound, 2 unbound, 3 illicit); `lszcrypt -c CARD.DOM` prints se_bind/se_associate.
 *
 * Machine: adapters 4 (CEX8 EP11), 5 (CEX8 accelerator), 6 (CEX8 CCA), domains 4 and 5, all
 * given to one mdev.
 */
import { test } from '../helpers/kernel.js'
import { apsim, requireFuse, useHost } from '../helpers/mount.js'
import { STRERROR } from '../helpers/shell.js'

const U = '0b5a0b46-93c0-4d2a-8b1e-4d5c6e7f8a9b'
const G = 'kernel/debug/apsim/guest/pv1/sys'
const TOPOLOGY = `
qci: { features: [APSC, APXA, QACT, RC8A], max_adapter_id: 63, max_domain_id: 255 }
adapters: [{ id: 4, type: CEX8, mode: ep11 }, { id: 5, type: CEX8, mode: accel }, { id: 6, type: CEX8, mode: cca }]
usage_domains: [4, 5]
`
const err = (errno: keyof typeof STRERROR): string => `bash: line 1: echo: write error: ${STRERROR[errno]}\n`

test.before('root and /dev/fuse are available (fails, never skips)', () => { requireFuse() })
const host = useHost(test, { topologyYaml: TOPOLOGY })

async function ok (script: string): Promise<string> {
  const r = await host().sh(script)
  if (r.code !== 0 || r.stderr !== '') throw new Error(`${script}: exit ${r.code}: ${r.stderr}`)
  return r.stdout
}

/** SESTAT as lszcrypt -V derives it from the queue's ap_functions. */
async function sestat (queue: string): Promise<string> {
  const fac = parseInt((await ok(`cat ${G}/devices/ap/card${queue.slice(0, 2)}/${queue}/ap_functions`)).trim(), 16)
  return ['usable', 'bound', 'unbound', 'illicit'][(fac & 0xc000) >>> 14]
}

test.serial('apsim guest start --se: the guest lists as se, its bus has APSB, its queues se_bind and se_associate', async t => {
  const m = host()
  const M = `devices/vfio_ap/matrix/${U}`
  await ok(`echo -4-6 > bus/ap/apmask; echo ${U} > devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create
    for a in 4 5 6; do echo $a > ${M}/assign_adapter; done; for d in 4 5; do echo $d > ${M}/assign_domain; done`)
  const r = await apsim('guest', 'start', m.dir, 'pv1', U, '--se')
  t.is(r.code, 0, r.stderr)
  t.is(await ok('cat kernel/debug/apsim/guests'), `pv1 ${U} se\n`)
  t.is(await ok(`cat ${G}/bus/ap/features`), 'APSC APXA QACT RC8A APSB\n')
  t.is(await ok(`cd ${G}/devices/ap && cat card04/04.0004/se_bind card04/04.0004/se_associate card05/05.0004/se_bind card05/05.0004/se_associate card06/06.0004/se_bind card06/06.0004/se_associate`),
    'unbound\nunassociated\nunbound\n-\n-\n-\n')
  t.is(await ok(`stat -c %a ${G}/devices/ap/card04/04.0004/se_bind ${G}/devices/ap/card04/04.0004/se_associate`), '644\n644\n')
  t.is(await sestat('04.0004'), 'unbound')
  t.is((await m.sh('ls devices/ap/card04/04.0004/se_bind')).code, 2, 'the host has no se_bind')
})

test.serial('pvapconfig\'s sequence: bind, associate; SESTAT goes unbound → bound → usable', async t => {
  const q = `${G}/devices/ap/card04/04.0004`
  await ok(`echo 1 > ${q}/se_bind`)
  t.is(await ok(`cat ${q}/se_bind ${q}/se_associate`), 'bound\nunassociated\n')
  t.is(await sestat('04.0004'), 'bound')
  await ok(`echo 17 > ${q}/se_associate`)
  t.is(await ok(`cat ${q}/se_bind ${q}/se_associate`), 'bound\nassociated 17\n')
  t.is(await sestat('04.0004'), 'usable')
  await ok(`echo 1 > ${G}/devices/ap/card05/05.0004/se_bind`)
  t.is(await sestat('05.0004'), 'usable', 'an accelerator queue is usable once bound')
})

test.serial('refusals with the kernel\'s errnos, each changing nothing', async t => {
  const d = `${G}/devices/ap`
  for (const [script, errno] of [
    [`echo 1 > ${d}/card06/06.0005/se_bind`, 'EINVAL'], // CCA cannot bind
    [`echo 1 > ${d}/card05/05.0005/se_associate`, 'EINVAL'], // accelerators do not associate
    [`echo 1 > ${d}/card04/04.0005/se_associate`, 'EINVAL'], // not bound yet
    [`echo 1 > ${d}/card04/04.0004/se_bind`, 'EINVAL'], // already bound
    [`echo 3 > ${d}/card04/04.0004/se_associate`, 'EINVAL'], // already associated
    [`echo perhaps > ${d}/card04/04.0005/se_bind`, 'EINVAL'],
    [`echo 1 > ${d}/card04/04.0005/se_bind && echo 0x10000 > ${d}/card04/04.0005/se_associate`, 'EINVAL'], // indexes are below 0x10000
    [`echo 4294967296 > ${d}/card04/04.0005/se_associate`, 'ERANGE']
  ] as const) {
    t.is((await host().sh(script)).stderr, err(errno), script)
  }
  t.is(await ok(`cat ${d}/card04/04.0004/se_associate ${d}/card04/04.0005/se_associate ${d}/card06/06.0005/se_bind`), 'associated 17\nunassociated\n-\n')
})

test.serial('reset keeps the binding; echo 0 > se_bind drops binding and association', async t => {
  const q = `${G}/devices/ap/card04/04.0004`
  await ok(`echo 1 > ${q}/reset`)
  t.is(await ok(`cat ${q}/se_bind ${q}/se_associate`), 'bound\nassociated 17\n')
  await ok(`echo 0 > ${q}/se_bind`)
  t.is(await ok(`cat ${q}/se_bind ${q}/se_associate`), 'unbound\nunassociated\n')
  t.is(await sestat('04.0004'), 'unbound')
})

test.serial('host hot unplug and replug of an adapter: the guest\'s queues come back unbound; the guest\'s state is in the host\'s snapshot', async t => {
  const M = `devices/vfio_ap/matrix/${U}`
  t.is(await ok(`cat ${G}/devices/ap/card04/04.0005/se_bind`), 'bound\n')
  await ok(`echo 4 > ${M}/unassign_adapter`)
  t.is((await host().sh(`ls ${G}/devices/ap/card04`)).code, 2)
  await ok(`echo 4 > ${M}/assign_adapter`)
  t.is(await ok(`cat ${G}/devices/ap/card04/04.0005/se_bind`), 'unbound\n')
  const snap = JSON.parse((await apsim('snapshot', host().dir)).stdout) as { guests?: Array<{ name: string, se: boolean }> }
  t.deepEqual(snap.guests?.map(g => [g.name, g.se]), [['pv1', true]])
})
