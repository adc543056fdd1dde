/**
 * The real tools the integration tests run against apsim (mdevctl, libvirtd and virsh,
 * udevadm, systemd-analyze), installed from Debian packages by mount-scripts/install-clients.sh
 * when missing. A tool that cannot be had fails the test; it is never skipped.
 */
import { existsSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ExecutionContext } from 'ava'
import { CLI, RUN_DIR, run, type ShResult } from './mount.js'

const INSTALL = fileURLToPath(new URL('../../../mount-scripts/install-clients.sh', import.meta.url))

let installed: Promise<void> | undefined

/** Installs whatever of the client tools is missing (once per test process). */
export async function ensureClients (t: ExecutionContext): Promise<void> {
  t.timeout(10 * 60_000, 'installing the client tools with apt-get')
  installed ??= (async () => {
    const r = await run('bash', [INSTALL])
    if (r.code !== 0) throw new Error(`cannot install the client tools (mount-scripts/install-clients.sh, status ${r.code}):\n${r.stderr}`)
  })()
  await installed
}

/** The libvirt nodedev driver module (a directory holding only it keeps libvirtd to that driver). */
export function nodedevDriver (): string {
  const found = readdirSync('/usr/lib').map(d => path.join('/usr/lib', d, 'libvirt/connection-driver/libvirt_driver_nodedev.so')).filter(f => existsSync(f))
  if (found.length === 0) throw new Error('libvirt_driver_nodedev.so not found (Debian package libvirt-daemon)')
  return found[0]
}

/**
 * Shell lines that start a private libvirtd in an `apsim run` script: a private /run (its
 * sockets, pid file and nodedev state), /etc/mdevctl.d's callout dirs, the nodedev driver alone
 * (LIBVIRT_DRIVER_DIR: the QEMU driver would want a libvirt-qemu user and write to /etc; the
 * script's environment needs NODEDEV_DRIVER=nodedevDriver()), and `V` for virsh on it.
 */
export const LIBVIRTD = `
mount -t tmpfs tmpfs /run
mkdir /run/drivers && ln -s "$NODEDEV_DRIVER" /run/drivers/
mkdir -p /etc/mdevctl.d/scripts.d/callouts /etc/mdevctl.d/scripts.d/notifiers
LIBVIRT_DRIVER_DIR=/run/drivers libvirtd --pid-file /run/libvirtd.pid 2> /run/libvirtd.log &
for i in $(seq 100); do [ -S /run/libvirt/libvirt-sock ] && break; sleep 0.1; done
V() { virsh -q -c nodedev:///system "$@"; }
`

/**
 * `apsim run [opts] -- bash -c script` with LC_ALL=C: CMD's status, stdout, stderr. The
 * script is root in a private mount namespace with the simulated tree over /sys.
 */
export async function apsimRun (script: string, opts: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ShResult> {
  return await run(process.execPath, [CLI, 'run', ...opts, '--', 'bash', '-c', script], {
    cwd: '/',
    env: { ...process.env, APSIM_RUN_DIR: RUN_DIR, LC_ALL: 'C', ...env }
  })
}

/**
 * Runs a libvirt session script (LIBVIRTD and `=== title` lines before each part) under
 * `apsim run`; the output's parts by title. A failed session throws with its output.
 */
export async function libvirtSession (t: ExecutionContext, script: string): Promise<Map<string, string>> {
  await ensureClients(t)
  const r = await apsimRun(script, [], { NODEDEV_DRIVER: nodedevDriver() })
  if (r.code !== 0) throw new Error(`the libvirt session failed (status ${r.code}):\n${r.stdout}\n${r.stderr}`)
  const sections = new Map<string, string>()
  for (const part of r.stdout.split(/^=== /m).slice(1)) {
    const nl = part.indexOf('\n')
    sections.set(part.slice(0, nl), part.slice(nl + 1))
  }
  return sections
}
