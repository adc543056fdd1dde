/**
 * libvirt's node device driver (Debian 12: libvirt 9.0) against the simulated host: a private
 * libvirtd inside `apsim run` enumerates the tree through libudev and mdevctl, and virsh shows
 * the cards, queues, matrix device and mdevs. No udevd is needed: libudev enumerates
 * bus/*\/devices and class/* and reads each device's uevent file; SYSTEMD_DEVICE_VERIFY_SYSFS=0
 * (exported by apsim run) makes it accept a /sys that is not sysfs.
 */
import test from 'ava'
import { LIBVIRTD, libvirtSession } from '../helpers/clients.js'

const U1 = '62177883-f1bb-47f0-914d-32a22e3a8804'
const U2 = '22222222-2222-3333-4444-555555555555'
const name = (uuid: string): string => `mdev_${uuid.replace(/-/g, '_')}_matrix`

/**
 * The whole session in one namespace: mdevs made before libvirtd starts, a private libvirtd
 * (LIBVIRTD), and one `=== title` section per virsh command.
 */
const SCRIPT = `
set -eu
echo -5,-6 > /sys/bus/ap/apmask
# An active mdev, as a management tool would make it (libvirt finds it by enumeration)...
mdevctl start -u ${U1} -p matrix -t vfio_ap-passthrough
M=/sys/devices/vfio_ap/matrix/${U1}
echo 5 > $M/assign_adapter; echo 4 > $M/assign_domain; echo 0xab > $M/assign_control_domain
# ... and a defined, inactive one (libvirt asks mdevctl for those).
mdevctl define -u ${U2} -p matrix -t vfio_ap-passthrough
mdevctl modify -u ${U2} --addattr=assign_adapter --value=6
mdevctl modify -u ${U2} --addattr=assign_domain --value=0x47
${LIBVIRTD}
section () { echo "=== $1"; shift; "$@" 2>&1 || echo "(status $?)"; }
section list-ap_card V nodedev-list --cap ap_card
section list-ap_queue V nodedev-list --cap ap_queue
section list-ap_matrix V nodedev-list --cap ap_matrix
section list-mdev V nodedev-list --cap mdev
section list-mdev-all V nodedev-list --cap mdev --all
section card V nodedev-dumpxml ap_card05
section queue V nodedev-dumpxml ap_05_0004
section matrix V nodedev-dumpxml ap_matrix
section mdev V nodedev-dumpxml ${name(U1)}
section defined V nodedev-dumpxml ${name(U2)}
section tree V nodedev-list --tree
kill "$(cat /run/libvirtd.pid)"; wait
section libvirtd-log cat /run/libvirtd.log
`

let sections: Map<string, string>

test.before(async t => { sections = await libvirtSession(t, SCRIPT) })

const section = (title: string): string => {
  const s = sections.get(title)
  if (s === undefined) throw new Error(`no section ${title}`)
  return s
}
const lines = (title: string): string[] => section(title).split('\n').map(l => l.trim()).filter(l => l !== '')

test('nodedev-list --cap ap_card, ap_queue, ap_matrix: the simulated cards, queues and matrix device', t => {
  t.deepEqual(lines('list-ap_card'), ['ap_card04', 'ap_card05', 'ap_card06'])
  const queues = ['04', '05', '06'].flatMap(a => ['0004', '0047', '00ab', '00ff'].map(d => `ap_${a}_${d}`))
  t.deepEqual(lines('list-ap_queue'), queues)
  t.deepEqual(lines('list-ap_matrix'), ['ap_matrix'])
})

test('nodedev-list --cap mdev: the active mdev; --all adds the one mdevctl has defined', t => {
  t.deepEqual(lines('list-mdev'), [name(U1)])
  t.deepEqual(lines('list-mdev-all'), [name(U2), name(U1)].sort())
})

test('nodedev-dumpxml of a card and a queue: adapter, domain, driver, parent', t => {
  t.is(section('card'), `<device>
  <name>ap_card05</name>
  <path>/sys/devices/ap/card05</path>
  <parent>computer</parent>
  <driver>
    <name>cex4card</name>
  </driver>
  <capability type='ap_card'>
    <ap-adapter>0x05</ap-adapter>
  </capability>
</device>
`)
  t.is(section('queue'), `<device>
  <name>ap_05_0004</name>
  <path>/sys/devices/ap/card05/05.0004</path>
  <parent>ap_card05</parent>
  <driver>
    <name>vfio_ap</name>
  </driver>
  <capability type='ap_queue'>
    <ap-adapter>0x05</ap-adapter>
    <ap-domain>0x0004</ap-domain>
  </capability>
</device>
`)
})

test('nodedev-dumpxml ap_matrix: the vfio_ap-passthrough type with its instances', t => {
  t.is(section('matrix'), `<device>
  <name>ap_matrix</name>
  <path>/sys/devices/vfio_ap/matrix</path>
  <parent>computer</parent>
  <driver>
    <name>vfio_ap</name>
  </driver>
  <capability type='ap_matrix'>
    <capability type='mdev_types'>
      <type id='vfio_ap-passthrough'>
        <name>VFIO AP Passthrough Device</name>
        <deviceAPI>vfio-ap</deviceAPI>
        <availableInstances>65535</availableInstances>
      </type>
    </capability>
  </capability>
</device>
`)
})

test('nodedev-dumpxml of the active mdev: type, uuid, parent, IOMMU group', t => {
  t.is(section('mdev'), `<device>
  <name>${name(U1)}</name>
  <path>/sys/devices/vfio_ap/matrix/${U1}</path>
  <parent>ap_matrix</parent>
  <driver>
    <name>vfio_ap_mdev</name>
  </driver>
  <capability type='mdev'>
    <type id='vfio_ap-passthrough'/>
    <uuid>${U1}</uuid>
    <parent_addr>matrix</parent_addr>
    <iommuGroup number='0'/>
  </capability>
</device>
`)
})

test('nodedev-dumpxml of the defined mdev: its attributes, from mdevctl', t => {
  const xml = section('defined')
  t.regex(xml, new RegExp(`<name>${name(U2)}</name>`))
  t.regex(xml, /<parent>ap_matrix<\/parent>/)
  t.regex(xml, /<type id='vfio_ap-passthrough'\/>/)
  t.regex(xml, /<attr name='assign_adapter' value='6'\/>\s*<attr name='assign_domain' value='0x47'\/>/)
})

test('nodedev-list --tree: queues under their cards, the mdev under the matrix device', t => {
  const tree = section('tree')
  t.regex(tree, /\+- ap_card05\n\s*\|\s*\|\n\s*\|\s*\+- ap_05_0004/)
  t.regex(tree, new RegExp(`\\+- ap_matrix\\n\\s*\\|\\n\\s*\\+- ${name(U1)}`))
})

test('libvirtd logged no error but the x86-only DMI lookup (s390 has no DMI; libvirt skips it there)', t => {
  const errors = section('libvirtd-log').split('\n').filter(l => / error : /.test(l))
  t.deepEqual(errors.map(l => l.replace(/^.* error : /, '')), [
    "udevGetDMIData:1936 : internal error: Failed to get udev device for syspath '/sys/devices/virtual/dmi/id'"
  ])
})
