/**
 * apsim for a user who is not root, as CI jobs without sudo run it: `apsim run` gives CMD a
 * user namespace where it is root, with the tree over /sys, every file writable as by root on
 * a real host (the control tree too), mdevctl working and udev events relayed; `--env-only`
 * gives a host that user can configure; where user namespaces are refused, the reason names
 * the setting.
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { ensureClients } from '../helpers/clients.js'
import { requireFuse, run, type ShResult } from '../helpers/mount.js'
import { TEST_USER, userCopy, type UserCopy } from '../helpers/user.js'

let user: UserCopy

test.before(async () => {
  requireFuse()
  user = await userCopy()
})
test.after.always(() => { user?.remove() })

const U = '62177883-f1bb-47f0-914d-32a22e3a8804'
const NEST = fileURLToPath(new URL('../../../test/fixtures/nest-userns.sh', import.meta.url))

test('apsim run as a user who is not root: CMD is root over the simulated /sys, configures it and runs mdevctl', async t => {
  await ensureClients(t)
  const r = await user.as(process.execPath, [user.cli, 'run', '--', 'bash', '-c', `
    id -u
    stat -c '%u %g %a' /sys/bus/ap/apmask
    echo -5,-6 > /sys/bus/ap/apmask && cat /sys/bus/ap/apmask
    mdevctl start -u ${U} -p matrix -t vfio_ap-passthrough
    echo 5 > /sys/devices/vfio_ap/matrix/${U}/assign_adapter
    echo 0x47 > /sys/devices/vfio_ap/matrix/${U}/assign_domain
    mdevctl list
    cat /sys/devices/vfio_ap/matrix/${U}/matrix
    echo 4 > /sys/devices/vfio_ap/matrix/${U}/assign_adapter
    mdevctl stop -u ${U}`])
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout, [
    '0',
    '0 0 644',
    '0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
    `${U} matrix vfio_ap-passthrough manual`,
    '',
    '05.0047',
    ''
  ].join('\n'))
  t.regex(r.stderr, /^bash: line \d+: echo: write error: Cannot assign requested address$/m)
  t.not((await run('id', ['-u', TEST_USER])).stdout.trim(), '0')
})

test('rootless: the control tree is CMD\'s (LPAR changes, faults), and udev listeners hear the events', async t => {
  await ensureClients(t)
  const r = await user.as(process.execPath, [user.cli, 'run', '--', 'bash', '-c', `
    C=$APSIM_ROOT/kernel/debug/apsim
    udevadm monitor --udev -s ap/ap_card > $HOME/mon 2>&1 &
    until grep -q '^UDEV - ' $HOME/mon; do sleep 0.05; done
    echo "add-adapter 7 CEX7 ep11" > $C/lpar && ls -d /sys/devices/ap/card07
    echo "add write bus/ap/apmask EBUSY times=1" > $C/faults
    echo -7 > /sys/bus/ap/apmask
    sleep 0.2; kill %1
    grep -o 'add .*' $HOME/mon`])
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout, '/sys/devices/ap/card07\nadd      /devices/ap/card07 (ap)\n')
  t.regex(r.stderr, /echo: write error: Device or resource busy$/m)
})

test('--env-only as a user who is not root: a host that user owns and can configure', async t => {
  const r = await user.as(process.execPath, [user.cli, 'run', '--env-only', '--', 'bash', '-c', `
    stat -c '%U %a' $SYSFS_ROOT/bus/ap/apmask $SYSFS_ROOT/kernel/debug/apsim
    echo -5 > $SYSFS_ROOT/bus/ap/apmask && readlink $SYSFS_ROOT/devices/ap/card05/05.0004/driver
    echo "configure 6 off" > $APSIM_ROOT/kernel/debug/apsim/lpar && cat $SYSFS_ROOT/devices/ap/card06/config`])
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout, `${TEST_USER} 644\n${TEST_USER} 700\n../../../../bus/ap/drivers/vfio_ap\n0\n`)
})

/**
 * The kernel refuses user namespaces nested too deep: 33 levels down, apsim-ns.sh (what apsim
 * run uses) meets a real refusal. Which setting it names is read from /proc/sys: masked here,
 * in a private mount namespace, by a tmpfs whose user/max_user_namespaces says 0, as that
 * sysctl would (this machine does not let even root change it).
 */
test('where user namespaces are refused, apsim-ns.sh says so and names the setting', async t => {
  const dir = user.dir('refused')
  const m = await user.as(process.execPath, [user.cli, 'mount', dir, '--daemon'])
  t.is(m.code, 0, m.stderr)
  try {
    const script = path.join(path.dirname(user.cli), '../../mount-scripts/apsim-ns.sh')
    const deep = (mask: boolean): Promise<ShResult> => run('unshare', ['--mount', '--propagation', 'private', '--', 'bash', '-c',
      `${mask ? 'mount -t tmpfs tmpfs /proc/sys && mkdir /proc/sys/user && echo 0 > /proc/sys/user/max_user_namespaces && ' : ''}exec setpriv --reuid ${TEST_USER} --regid ${TEST_USER} --clear-groups -- bash ${NEST} 33 bash ${script} ${dir} -- true`])
    const named = await deep(true)
    t.is(named.code, 125)
    t.regex(named.stderr, /^apsim-ns\.sh: unprivileged user namespaces are refused on this machine \(user\.max_user_namespaces = 0\); run as root, or use apsim run --env-only$/m)
    const unnamed = await deep(false)
    t.is(unnamed.code, 125)
    t.regex(unnamed.stderr, /refused on this machine \(no sysctl says why \(a seccomp or LSM policy of the container\?\)\)/)
  } finally {
    await user.as(process.execPath, [user.cli, 'umount', dir])
  }
})
