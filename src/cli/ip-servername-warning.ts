// grpc-js gives TLS the target's host as its server name (SNI) even when the host is an IP
// address, and Node then prints a DeprecationWarning (DEP0123) once per process. etcd endpoints
// and control-plane addresses are usually IP addresses; SNI plays no part on those connections
// (the certificate is still checked against the IP address), and nothing the operator does can
// remove the warning, so `meshpilot` drops that one warning and passes every other on.

type EmitWarning = (warning: string | Error, ...rest: unknown[]) => void;

/** Node's code for "Setting the TLS ServerName to an IP address is not permitted by RFC 6066". */
export const IP_SERVERNAME_WARNING = 'DEP0123';

// emitWarning(warning, type, code) or emitWarning(warning, { type, code }).
const codeOf = (rest: readonly unknown[]): unknown => {
  const [first, second] = rest;
  return typeof first === 'object' && first !== null ? (first as { code?: unknown }).code : second;
};

/** Makes process.emitWarning drop DEP0123 and pass every other warning on unchanged. */
export function dropIpServernameWarning(): void {
  const emit = process.emitWarning.bind(process) as EmitWarning;
  const filtered: EmitWarning = (warning, ...rest) => {
    if (codeOf(rest) === IP_SERVERNAME_WARNING) return;
    emit(warning, ...rest);
  };
  process.emitWarning = filtered as typeof process.emitWarning;
}
