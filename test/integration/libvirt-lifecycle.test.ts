/**
 * libvirt's mdev lifecycle against the simulated host, as on an IBM Z host: libvirtd started
 * first, then devices come and go and libvirt hears of them through udev events (apsim run's
 * relay): nodedev-create of an AP mdev XML, define/start/destroy/undefine, nodedev-event,
 * mdevctl used directly, adapters added and removed with the control plane, udevadm settle.
 */
import test from 'ava'
import { LIBVIRTD, libvirtSession } from '../helpers/clients.js'

const U = '3cd4b1a8-0000-4000-8000-000000000047'
const D = '3cd4b1a8-0000-4000-8000-0000000000ab'
const name = (uuid: string): string => `mdev_${uuid.replace(/-/g, '_')}_matrix`

const xml = (uuid: string | undefined, adapter: string, domain: string): string => `<device>
  <parent>ap_matrix</parent>
  <capability type='mdev'>
    <type id='vfio_ap-passthrough'/>${uuid === undefined ? '' : `\n    <uuid>${uuid}</uuid>`}
    <attr name='assign_adapter' value='${adapter}'/>
    <attr name='assign_domain' value='${domain}'/>
  </capability>
</device>`

const SCRIPT = `
set -u
${LIBVIRTD}
T=$(mktemp -d)
cat > $T/create.xml <<'EOF'
${xml(undefined, '5', '0x47')}
EOF
cat > $T/define.xml <<'EOF'
${xml(D, '6', '0xab')}
EOF
V nodedev-event --loop --event lifecycle > $T/events 2>&1 &
section () { echo "=== $1"; shift; "$@" 2>&1 || echo "(status $?)"; }
# Actions with virsh's messages. Like any script, wait for libvirt to hear that a device came or
# went: nodedev-start and -destroy return once mdevctl did, not once libvirt's udev thread
# handled the event (the kernel's came first: it was sent before mdevctl's write(2) returned).
A () { virsh -c nodedev:///system "$@"; }
# (libvirt learns of definitions from mdevctl's directory, watched with inotify: --all too.)
listed () { for i in $(seq 100); do [ "$(V nodedev-list --cap "$1" \${4:-} | grep -cx "$2")" = "$3" ] && return; sleep 0.05; done; }
ms () { echo $(( $(date +%s%N) / 1000000 )); }
echo -5,-6 > /sys/bus/ap/apmask
t0=$(ms); section create A nodedev-create $T/create.xml; echo "=== create-ms"; echo $(( $(ms) - t0 ))
created=$(grep -o 'mdev_[0-9a-f_]*_matrix' <<< "$(V nodedev-list --cap mdev)" | head -1)
section created-list V nodedev-list --cap mdev
section created-matrix cat /sys/devices/vfio_ap/matrix/$(sed 's/^mdev_//; s/_matrix$//; s/_/-/g' <<< "$created")/matrix
section destroy-created A nodedev-destroy "$created"
section after-destroy V nodedev-list --cap mdev
section define A nodedev-define $T/define.xml
section defined-inactive V nodedev-list --cap mdev --inactive
section start A nodedev-start ${name(D)}
listed mdev ${name(D)} 1
section started-list V nodedev-list --cap mdev
section started-matrix cat /sys/devices/vfio_ap/matrix/${D}/matrix
section destroy A nodedev-destroy ${name(D)}
listed mdev ${name(D)} 0
section destroyed-list V nodedev-list --cap mdev
section undefine A nodedev-undefine ${name(D)}
listed mdev ${name(D)} 0 --all
section undefined-all V nodedev-list --cap mdev --all
mdevctl start -u ${U} -p matrix -t vfio_ap-passthrough
listed mdev ${name(U)} 1
section mdevctl-started V nodedev-list --cap mdev
mdevctl stop -u ${U}
listed mdev ${name(U)} 0
section mdevctl-stopped V nodedev-list --cap mdev
echo "add-adapter 7 CEX7 ep11" > $APSIM_ROOT/kernel/debug/apsim/lpar
listed ap_queue ap_07_00ff 1
section cards-added V nodedev-list --cap ap_card
section queues-added V nodedev-list --cap ap_queue
echo "remove-adapter 7" > $APSIM_ROOT/kernel/debug/apsim/lpar
listed ap_card ap_card07 0
section cards-removed V nodedev-list --cap ap_card
section queues-removed V nodedev-list --cap ap_queue
section settle udevadm settle --timeout=5
sleep 0.3
section events cat $T/events
`

let sections: Map<string, string>

test.before(async t => { sections = await libvirtSession(t, SCRIPT) })

const lines = (title: string): string[] => {
  const s = sections.get(title)
  if (s === undefined) throw new Error(`no section ${title}`)
  return s.split('\n').map(l => l.trim()).filter(l => l !== '')
}

test('nodedev-create of an AP mdev XML returns the new device, configured, listed at once', t => {
  const [created] = lines('create')
  t.regex(created, /^Node device mdev_[0-9a-f_]{36}_matrix created from .*create\.xml$/)
  // libvirt looks for the device once mdevctl returned, then sleeps 5 s: found at once, the
  // udev event was there before mdevctl's write(2) returned, as with the kernel.
  t.log(`nodedev-create took ${lines('create-ms')[0]} ms`)
  const dev = /mdev_[0-9a-f_]+_matrix/.exec(created)![0]
  t.deepEqual(lines('created-list'), [dev], 'created-list')
  t.deepEqual(lines('created-matrix'), ['05.0047'], 'created-matrix')
  t.regex(lines('destroy-created')[0], /^Destroyed node device 'mdev_[0-9a-f_]+_matrix'$/)
  t.deepEqual(lines('after-destroy'), [], 'after-destroy')
})

test('nodedev-define, nodedev-start, nodedev-destroy, nodedev-undefine', t => {
  t.regex(lines('define').join('\n'), new RegExp(`^Node device '${name(D)}' defined from '.*define\\.xml'$`))
  t.deepEqual(lines('defined-inactive'), [name(D)], 'defined-inactive')
  t.deepEqual(lines('start'), [`Device ${name(D)} started`], 'start')
  t.deepEqual(lines('started-list'), [name(D)], 'started-list')
  t.deepEqual(lines('started-matrix'), ['06.00ab'], 'started-matrix')
  t.deepEqual(lines('destroy'), [`Destroyed node device '${name(D)}'`], 'destroy')
  t.deepEqual(lines('destroyed-list'), [], 'destroyed-list')
  t.deepEqual(lines('undefine'), [`Undefined node device '${name(D)}'`], 'undefine')
  t.deepEqual(lines('undefined-all'), [], 'undefined-all')
})

test('mdevctl start and stop without libvirt: libvirt lists the mdev, then drops it', t => {
  t.deepEqual(lines('mdevctl-started'), [name(U)], 'mdevctl-started')
  t.deepEqual(lines('mdevctl-stopped'), [], 'mdevctl-stopped')
})

test('adapters added and removed with the control plane appear and disappear in libvirt', t => {
  t.deepEqual(lines('cards-added'), ['ap_card04', 'ap_card05', 'ap_card06', 'ap_card07'], 'cards-added')
  t.true(lines('queues-added').includes('ap_07_0047'))
  t.is(lines('queues-added').length, 16)
  t.deepEqual(lines('cards-removed'), ['ap_card04', 'ap_card05', 'ap_card06'], 'cards-removed')
  t.is(lines('queues-removed').length, 12)
  t.false(lines('queues-removed').some(q => q.startsWith('ap_07_')))
})

test('udevadm settle returns at once, successfully', t => {
  t.deepEqual(lines('settle'), [], 'settle')
})

test('nodedev-event --loop prints the lifecycle events', t => {
  const events = lines('events')
  const created = lines('create')[0].match(/mdev_[0-9a-f_]+_matrix/)![0]
  const of = (dev: string): string[] => events.filter(e => e.includes(`node device ${dev}:`)).map(e => e.split(': ')[1])
  t.deepEqual(of(created), ['Created', 'Deleted'])
  t.deepEqual(of(name(D)), ['Defined', 'Created', 'Deleted', 'Undefined'])
  t.deepEqual(of(name(U)), ['Created', 'Deleted'])
  t.deepEqual(of('ap_card07'), ['Created', 'Deleted'])
})
