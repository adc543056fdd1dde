/**
 * A user who is not root, as the rootless tests need one: created once (`apsim-ci`, no login,
 * no home), with a world-readable copy of the build to run (a checkout under /root is not
 * readable by others), and a way to run a command as that user.
 */
import { chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { CLI, run, type ShResult } from './mount.js'

export const TEST_USER = 'apsim-ci'

let created: Promise<void> | undefined

/** Creates TEST_USER unless it exists (useradd, from Debian's passwd package). */
export async function ensureUser (): Promise<void> {
  created ??= (async () => {
    if ((await run('id', ['-u', TEST_USER])).code === 0) return
    const r = await run('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', TEST_USER])
    if (r.code !== 0 && (await run('id', ['-u', TEST_USER])).code !== 0) throw new Error(`cannot create the test user ${TEST_USER}: ${r.stderr}`)
  })()
  await created
}

export interface UserCopy {
  /** build/daemon/cli.js of the copy. */
  cli: string
  /** A directory the user owns (its runtime dir, mount points, files). */
  home: string
  /** A new directory `home/name`, the user's (a mount point for it). */
  dir: (name: string) => string
  /** Runs `cmd args` as TEST_USER (LC_ALL=C, APSIM_RUN_DIR in `home`), cwd `home`. */
  as: (cmd: string, args: string[], env?: NodeJS.ProcessEnv) => Promise<ShResult>
  remove: () => void
}

/** A world-readable copy of the build, node_modules and mount-scripts, and a home for the user. */
export async function userCopy (): Promise<UserCopy> {
  await ensureUser()
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'apsim-user-'))
  const repo = path.resolve(path.dirname(CLI), '../..')
  const home = path.join(tmp, 'home')
  const copy = await run('bash', ['-c', `cp -a build node_modules package.json mount-scripts "${tmp}/" && chmod -R a+rX "${tmp}" && chmod a+x "${tmp}" && mkdir "${home}" && chown ${TEST_USER}: "${home}"`], { cwd: repo })
  if (copy.code !== 0) throw new Error(`cannot copy the build for ${TEST_USER}: ${copy.stderr}`)
  const [uid, gid] = await Promise.all(['-u', '-g'].map(async o => Number((await run('id', [o, TEST_USER])).stdout)))
  return {
    cli: path.join(tmp, path.relative(repo, CLI)),
    home,
    dir: name => {
      const dir = path.join(home, name)
      mkdirSync(dir)
      chownSync(dir, uid, gid)
      return dir
    },
    as: async (cmd, args, env = {}) => await run('setpriv', ['--reuid', TEST_USER, '--regid', TEST_USER, '--clear-groups', '--', cmd, ...args], {
      cwd: home,
      env: { ...process.env, HOME: home, LC_ALL: 'C', APSIM_RUN_DIR: path.join(home, 'run'), ...env }
    }),
    remove: () => rmSync(tmp, { recursive: true, force: true })
  }
}
