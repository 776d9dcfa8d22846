// Lethe's group roles, for TypeScript (lethe doctor checks them before Lethe is installed, when
// the database cannot say). The database's own list is pii_internal.group_roles()
// (db/code/91_roles.sql); test/roles.grants.test.ts checks both agree.
export const GROUP_ROLES: readonly string[] = [
  'pii_admin',
  'pii_operator',
  'pii_masked_reader',
  'pii_auditor',
  'pii_dispatcher',
];
