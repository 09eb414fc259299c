// Runs `meshpilot` commands in-process for tests: what they print, what they warn, and the exit
// code, whether they set it or commander threw it. Written once for every command's tests.
import { Command, CommanderError } from 'commander';
import { reportUnknownOptionsFirst } from './options.js';

/** What one command run printed and how it ended. */
export interface CliRun {
  readonly out: string;
  readonly err: string;
  readonly exitCode: number;
}

/** Where a command writes: its output, its warnings and its exit code. */
export interface CliIo {
  write(s: string): void;
  warn(s: string): void;
  setExitCode(code: number): void;
}

/** Registers commands through `register` on a fresh program, runs `args` as a user would type them, and reports. */
export async function runCli(register: (program: Command, io: CliIo) => void, ...args: string[]): Promise<CliRun> {
  let out = '';
  let err = '';
  let exitCode = 0;
  const program = new Command('meshpilot');
  register(program, { write: (s) => (out += s), warn: (s) => (err += s), setExitCode: (c) => (exitCode = c) });
  reportUnknownOptionsFirst(program);
  // Every command and subcommand reports through us instead of exiting the test process.
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const c of all(program)) c.exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  try {
    await program.parseAsync(args, { from: 'user' });
    return { out, err, exitCode };
  } catch (e) {
    if (e instanceof CommanderError) return { out, err, exitCode: e.exitCode };
    throw e;
  }
}
