// Commander checks required options before unknown ones, so `serve --conifg x` was reported as a
// missing --config. Required options are checked here instead, after commander has refused unknown
// options and just before the command runs, with commander's own wording.
import type { Command, Option } from 'commander';

const commandsOf = (c: Command): Command[] => [c, ...c.commands.flatMap(commandsOf)];

/** Makes every command report an unknown option as unknown, before any missing required option; call after registering commands. */
export function reportUnknownOptionsFirst(program: Command): void {
  const required = new Map<Command, Option[]>();
  for (const c of commandsOf(program)) {
    const mandatory = c.options.filter((o) => o.mandatory);
    for (const o of mandatory) o.mandatory = false;
    if (mandatory.length > 0) required.set(c, mandatory);
  }
  program.hook('preAction', (_root, action) => {
    for (let c: Command | null = action; c; c = c.parent)
      for (const o of required.get(c) ?? [])
        if (c.getOptionValue(o.attributeName()) === undefined)
          action.error(`error: required option '${o.flags}' not specified`, { exitCode: 1, code: 'commander.missingMandatoryOptionValue' });
  });
}
