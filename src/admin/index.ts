export { startAdminServer } from './admin-server.js';
export type { AdminActions, AdminServer } from './admin-server.js';
export { publishAdminEndpoint, findAdminEndpoint, callAdmin, ADMIN_FILE, ADMIN_TOKEN_FILE } from './admin-file.js';
export type { AdminEndpoint } from './admin-file.js';
