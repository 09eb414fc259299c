#!/usr/bin/env node
import { Command } from 'commander';
import { registerCaCommands } from './ca-commands.js';
import { registerServeCommand } from './serve-command.js';
import { registerTokenCommand } from './token-command.js';
import { registerBootstrapCommand } from './bootstrap-command.js';
import { registerAgentCommand } from './agent-command.js';
import { registerAuthzCommands } from './authz-commands.js';
import { registerCaptureCommand } from './capture-command.js';
import { packageVersion } from './version.js';
import { registerValidateCommand } from './validate-command.js';
import { registerStatusCommand } from './status-command.js';
import { registerHostsCommand } from './hosts-command.js';
import { registerMtlsCommand } from './mtls-command.js';
import { registerConfigStoreCommands } from './config-store-commands.js';
import { reportUnknownOptionsFirst } from './options.js';
import { dropIpServernameWarning } from './ip-servername-warning.js';

dropIpServernameWarning();

// The open-file limit needs no raising here: Node raises its soft limit to the hard limit at
// start (PlatformInit in node.cc), which cli.test.ts checks.
const program = new Command('meshpilot').description('a control plane for Envoy sidecars').version(packageVersion(), '-V, --version');
registerServeCommand(program);
registerCaCommands(program);
registerTokenCommand(program);
registerBootstrapCommand(program);
registerAgentCommand(program);
registerAuthzCommands(program);
registerCaptureCommand(program);
registerValidateCommand(program);
registerStatusCommand(program);
registerHostsCommand(program);
registerMtlsCommand(program);
registerConfigStoreCommands(program);
reportUnknownOptionsFirst(program);
try {
  await program.parseAsync();
} catch (e) {
  console.error(`meshpilot: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(2);
}
