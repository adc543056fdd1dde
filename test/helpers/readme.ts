/**
 * The README's code blocks, for the tests that run them as they are written there (the API
 * example, the fixture recipes): a block is the fenced code right after `<!-- NAME -->`.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** README.md, seen from build/test/helpers/readme.js. */
export const README = fileURLToPath(new URL('../../../README.md', import.meta.url))

export function readmeBlock (name: string): string {
  const m = new RegExp(`<!-- ${name} -->\\n\`\`\`\\w*\\n([\\s\\S]*?)\`\`\`\\n`).exec(readFileSync(README, 'utf8'))
  if (m === null) throw new Error(`README.md has no code block marked <!-- ${name} -->`)
  return m[1]
}
