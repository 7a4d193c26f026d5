/** `mesh exec … --propose`, `mesh proposals` and `mesh approve ID`: the two-person rule (docs/two-person.md). */

import type { TargetFilter } from '../gossip/filter.js'
import type { ProposalView } from '../node/proposals.js'
import { table, withAgent } from './agent-client.js'
import { UsageError } from './errors.js'
import { type CliIo, type GlobalOptions, printJson } from './io.js'

const ID = /^[0-9a-f]{32}$/
const CALL_MS = 20_000

/** `mesh exec ACTION … --propose`: prints the proposal id on the first line, then what it says. */
export async function propose(
  io: CliIo,
  globals: GlobalOptions,
  request: { action: string; args: string[]; filter: TargetFilter; timeoutMs: number },
): Promise<number> {
  const { proposal } = (await withAgent(globals, c =>
    c.call('exec', { ...request, propose: true }, { timeoutMs: CALL_MS }),
  )) as { proposal: ProposalView }
  if (globals.json) printJson(io, proposal)
  else {
    io.stdout.write(`${proposal.id}\n${proposal.text}\n`)
    io.stderr.write(
      `mesh: proposed; nothing runs until enough operators approve it: mesh approve ${proposal.id}\n`,
    )
  }
  return 0
}

export async function proposals(io: CliIo, globals: GlobalOptions): Promise<number> {
  const { proposals: list } = (await withAgent(globals, c =>
    c.call('proposals.list', {}, { timeoutMs: CALL_MS }),
  )) as { proposals: ProposalView[] }
  if (globals.json) {
    printJson(io, list)
    return 0
  }
  if (list.length === 0) {
    io.stdout.write('no live proposals known to this node\n')
    return 0
  }
  io.stdout.write(
    `${table([
      ['PROPOSAL', 'ACTION', 'PROPOSER', 'APPROVED BY', 'EXPIRES', 'STATE'],
      ...list.map(p => [
        p.id,
        [p.action, ...p.args].join(' ').slice(0, 40),
        p.proposer,
        p.approvers.join(',') || '-',
        new Date(p.expiresAtMs).toISOString().replace('T', ' ').slice(0, 19),
        p.published ? 'published' : 'waiting',
      ]),
    ])}\n`,
  )
  return 0
}

export async function approve(io: CliIo, globals: GlobalOptions, id: string): Promise<number> {
  if (!ID.test(id)) throw new UsageError(`'${id}' is not a proposal id (32 lower-case hex digits)`)
  const { proposal } = (await withAgent(globals, c =>
    c.call('proposals.approve', { id }, { timeoutMs: CALL_MS }),
  )) as { proposal: ProposalView }
  if (globals.json) printJson(io, proposal)
  else {
    io.stdout.write(`${proposal.text}\napproved by ${proposal.approvers.join(', ')}\n`)
    io.stderr.write(
      proposal.published
        ? `mesh: the policy is met here: the request is published; results on the proposer's node or with mesh jobs show ${proposal.id}\n`
        : 'mesh: approval recorded and sent; it runs once the approvals meet the policy\n',
    )
  }
  return 0
}
