/**
 * Fault injection through the mount and the CLI: a user's tool sees the injected errno from
 * its own write(2), the rule is listed and cleared with `apsim fault`, and the injection is
 * labelled in the event stream (APSIM, never KERNEL) and in the daemon's log.
 */
import test from 'ava'
import { apsim, mountHost, requireFuse } from '../helpers/mount.js'

const T = 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough'
const U = '62177883-f1bb-47f0-914d-32a22e3a8804'
const M = `devices/vfio_ap/matrix/${U}`

test.serial('apsim fault add/list/history/clear drive what a shell sees', async t => {
  requireFuse()
  const m = await mountHost()
  try {
    await m.sh(`echo -5,-6 > bus/ap/apmask && echo ${U} > ${T}/create`)
    const add = await apsim('fault', 'add', m.dir, 'write', 'devices/vfio_ap/matrix/*/assign_adapter', 'EBUSY', '--times', '1', '--match', '5')
    t.is(add.code, 0, add.stderr)
    t.is(add.stdout, '1\n')
    const first = await m.sh(`echo 6 > ${M}/assign_adapter; echo 5 > ${M}/assign_adapter; echo 5 > ${M}/assign_adapter; cat ${M}/matrix`)
    t.regex(first.stderr, /^bash: line 1: echo: write error: Device or resource busy\n$/)
    t.is(first.stdout, '05.\n06.\n')
    t.is((await apsim('fault', 'list', m.dir)).stdout, `1 write devices/vfio_ap/matrix/*/assign_adapter EBUSY times=1 match=5 hits=1\n`)
    const pending = await apsim('fault', 'list', m.dir, '--pending')
    t.is(pending.code, 0)
    const history = JSON.parse((await apsim('fault', 'history', m.dir, '--json')).stdout) as Array<{ rule: number, path: string, errno: string }>
    t.deepEqual(history.map(h => [h.rule, h.path, h.errno]), [[1, `${M}/assign_adapter`, 'EBUSY']])
    const events = await apsim('events', m.dir, '-p')
    t.regex(events.stdout, new RegExp(`^APSIM\\[\\d+\\.\\d{6}\\] fault +/${M}/assign_adapter \\(apsim\\)\\nACTION=fault\\n.*\\nSUBSYSTEM=apsim\\nAPSIM_INJECTED=rule 1\\nOP=write\\nERRNO=EBUSY\\n`, 'm'))
    t.notRegex(events.stdout, /^KERNEL\[.*fault/m)
    t.regex(m.log(), /"injected":1/)
    t.regex(m.log(), /fault injected: write \/devices\/vfio_ap\/matrix\/[^ ]+\/assign_adapter -> EBUSY \(rule 1\)/)

    t.is((await apsim('fault', 'add', m.dir, 'read', 'devices/ap/card04/**', 'EIO', '--times', '3')).stdout, '2\n')
    const unfired = await apsim('fault', 'list', m.dir, '--pending')
    t.is(unfired.code, 1)
    t.regex(unfired.stderr, /^apsim: 1 fault rule\(s\) did not fire as often as expected\n$/)
    const read = await m.sh('cat devices/ap/card04/type; cat bus/ap/devices/card04/04.0047/online')
    t.regex(read.stderr, /card04\/type: Input\/output error\n.*online: Input\/output error\n$/s)
    t.is((await apsim('fault', 'clear', m.dir, '2')).code, 0)
    t.is((await m.sh('cat devices/ap/card04/type')).stdout, 'CEX5C\n')

    const bad = await apsim('fault', 'add', m.dir, 'write', 'bus/ap/apmask', 'EWHATEVER')
    t.is(bad.code, 1)
    t.regex(bad.stderr, /^apsim: EINVAL: fault: unknown errno "EWHATEVER"/)
    const delayed = await apsim('fault', 'add', m.dir, 'write', 'bus/ap/aqmask', '-', '--delay', '300')
    t.is(delayed.code, 0, delayed.stderr)
    const slow = await m.sh('echo -4 > bus/ap/aqmask; cat bus/ap/aqmask')
    t.is(slow.stdout, `0xf7${'f'.repeat(62)}\n`, 'a delay-only rule lets the store through')
    t.regex((await apsim('fault', 'history', m.dir)).stdout, /rule 3: write bus\/ap\/aqmask -> delayed after 300 ms\n$/)
    t.is((await apsim('fault', 'clear', m.dir)).code, 0)
    t.is((await apsim('fault', 'list', m.dir, '--json')).stdout, '[]\n')
  } finally {
    await m.stop()
  }
})

// Reliability, attack 2: a rule of twenty `**` froze the whole mount on the next store.
test.serial('a rule of twenty ** does not freeze the mount; the control tree answers and clears it', async t => {
  requireFuse()
  const m = await mountHost()
  try {
    const add = await apsim('fault', 'add', m.dir, 'write', `${'**a'.repeat(20)}b`, 'EIO')
    t.is(add.code, 0, add.stderr)
    const r = await m.sh('echo -5,-6 > bus/ap/apmask; cat bus/ap/apmask; cat kernel/debug/apsim/faults')
    t.is(r.stderr, '')
    t.is(r.stdout, `0xf9${'f'.repeat(62)}\n1 write ${'**a'.repeat(20)}b EIO hits=0\n`)
    t.is((await apsim('fault', 'clear', m.dir)).code, 0)
    t.is((await m.sh('cat kernel/debug/apsim/faults')).stdout, '')
  } finally {
    await m.stop()
  }
})
