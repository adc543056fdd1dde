/**
 * Running the conformance suite under an older kernel profile (lib/profiles.ts).
 *
 * `APSIM_KERNEL=5.10 ava build/test/conformance/*.test.js build/test/daemon/fuse.test.js`
 * mounts every host with that profile (test/helpers/mount.ts adds `kernel:` to the topology)
 * and expects the tests listed for it in EXPECTED_DIFFERENCES — and only those — to fail:
 * they are registered as `test.failing`, so a listed test that starts passing fails the run
 * too (the table must then shrink). The conformance files import `test` from here instead of
 * from ava; under the newest profile it is ava's `test` itself.
 */
import avaTest, { type TestFn } from 'ava'

export type { ExecutionContext, TestFn } from 'ava'

/** The profile the mounts run under. */
export const KERNEL = process.env.APSIM_KERNEL ?? 'newest'

/**
 * Per profile: the title of every test that fails there (as ava prints it) → why: the switch
 * of lib/profiles.ts whose older value explains the difference. The one place the suite's
 * expected differences are declared.
 */
export const EXPECTED_DIFFERENCES: Record<string, Record<string, string>> = {
  '5.10': {}
}

// ---------------------------------------------------------------------------------------

type Register = (...args: unknown[]) => unknown
interface Macro { exec: (...a: unknown[]) => unknown, title?: (provided: string | undefined, ...a: unknown[]) => string | undefined }

/** The title ava gives a test (parse-test-args.js: the macro's title function, trimmed, blanks collapsed). */
function titleOf (args: unknown[]): string | undefined {
  const raw = typeof args[0] === 'string' ? args[0] : undefined
  const rest = raw === undefined ? args : args.slice(1)
  const impl = rest[0] as Partial<Macro> | undefined
  const value = (typeof impl === 'object' && impl !== null ? impl.title?.(raw, ...rest.slice(1)) : undefined) ?? raw
  return typeof value === 'string' ? value.trim().replaceAll(/\s+/g, ' ') : undefined
}

/**
 * `register(...args)` (ava's `test` or `test.serial`), or `failing(...)` with the reason
 * logged first when the title is an expected difference of this profile.
 */
function expecting (register: Register, failing: Register, differences: Record<string, string>): Register {
  return (...args: unknown[]) => {
    const title = titleOf(args)
    const reason = title === undefined ? undefined : differences[title]
    if (reason === undefined) return register(...args)
    const rest = typeof args[0] === 'string' ? args.slice(1) : args
    const impl = rest[0] as Macro | ((...a: unknown[]) => unknown)
    const exec = typeof impl === 'function' ? impl : impl.exec
    return failing(title, async (t: { log: (...v: unknown[]) => void }, ...a: unknown[]) => {
      t.log(`expected to fail under kernel ${KERNEL}: ${reason}`)
      await exec(t, ...a)
    }, ...rest.slice(1))
  }
}

function wrap (): TestFn {
  const differences = EXPECTED_DIFFERENCES[KERNEL]
  if (KERNEL === 'newest' || differences === undefined) return avaTest
  const t = avaTest as unknown as Register & { serial: Register & { failing: Register }, failing: Register }
  const serial = new Proxy(avaTest.serial, {
    apply: (_f, _this, args: unknown[]) => expecting(t.serial, t.serial.failing, differences)(...args)
  })
  return new Proxy(avaTest, {
    apply: (_f, _this, args: unknown[]) => expecting(t, t.failing, differences)(...args),
    get: (target, prop, receiver) => prop === 'serial' ? serial : Reflect.get(target, prop, receiver)
  })
}

/** ava's `test`, with this profile's expected differences registered as `test.failing`. */
export const test: TestFn = wrap()
export default test
