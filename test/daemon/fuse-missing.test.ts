/**
 * Where FUSE cannot mount, `apsim mount` and `apsim run` say which piece is missing and the
 * fix, as a container or CI job meets them: no /dev/fuse (a private /dev without it), no
 * CAP_SYS_ADMIN (dropped from the bounding set, as `docker run` without --cap-add does), and
 * /dev/fuse closed to a user who is not root (the kernel's 0600, without udev's rule).
 */
import test from 'ava'
import { CLI, requireFuse, run } from '../helpers/mount.js'
import { TEST_USER, userCopy, type UserCopy } from '../helpers/user.js'

let user: UserCopy

test.before(async () => {
  requireFuse()
  user = await userCopy()
})
test.after.always(() => { user?.remove() })

/** A private /dev holding only null (and `fuse` with `fuseMode`), then CMD. */
const privateDev = (cmd: string, fuseMode?: string): string[] => ['--mount', '--propagation', 'private', '--', 'bash', '-c',
  `mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 ${fuseMode === undefined ? '' : `&& mknod -m ${fuseMode} /dev/fuse c 10 229`} && exec ${cmd}`]


test('no /dev/fuse: mount and run name the device and the container flags', async t => {
  const dir = user.dir('nodev')
  const m = await run('unshare', privateDev(`${process.execPath} ${CLI} mount ${dir}`))
  t.is(m.code, 1)
  t.regex(m.stderr, new RegExp(`^apsim: cannot mount ${dir}: there is no /dev/fuse \\(no fuse module, or a container started without the device\\): modprobe fuse, or give the container the device and the right to mount, e\\.g\\. docker run --device /dev/fuse --cap-add SYS_ADMIN`, 'm'))
  const r = await run('unshare', privateDev(`${process.execPath} ${CLI} run -- true`))
  t.is(r.code, 125)
  t.regex(r.stderr, /there is no \/dev\/fuse/)
})

test('root without CAP_SYS_ADMIN: the capability and --cap-add SYS_ADMIN', async t => {
  const dir = user.dir('nocap')
  const m = await run('setpriv', ['--bounding-set=-sys_admin', '--inh-caps=-sys_admin', '--', process.execPath, CLI, 'mount', dir])
  t.is(m.code, 1)
  t.regex(m.stderr, new RegExp(`^apsim: cannot mount ${dir}: this process lacks CAP_SYS_ADMIN, which mounting needs \\(a container without it\\): e\\.g\\. docker run --device /dev/fuse --cap-add SYS_ADMIN .*rootless mode`, 'm'))
})

test('a user who is not root and a /dev/fuse of mode 0600: the mode udev\'s rule gives it', async t => {
  const dir = user.dir('closed')
  const m = await run('unshare', privateDev(`setpriv --reuid ${TEST_USER} --regid ${TEST_USER} --clear-groups -- env APSIM_RUN_DIR=${user.home}/run ${process.execPath} ${user.cli} mount ${dir}`, '600'))
  t.is(m.code, 1)
  t.regex(m.stderr, new RegExp(`^apsim: cannot mount ${dir}: /dev/fuse cannot be opened by this user \\(EACCES\\); non-root FUSE needs it mode 0666, as the fuse package's udev rule makes it: chmod 0666 /dev/fuse`, 'm'))
})
