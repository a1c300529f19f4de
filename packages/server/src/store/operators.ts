import type { Role } from "../domain/roles.ts";
import type { Db } from "./db.ts";

export interface OperatorRecord {
  name: string;
  role: Role;
  createdAt: string;
  updatedAt: string;
}

const toOperator = (r: Record<string, unknown>): OperatorRecord => ({
  name: r.name as string,
  role: r.role as Role,
  createdAt: (r.created_at as Date).toISOString(),
  updatedAt: (r.updated_at as Date).toISOString(),
});

// $1 name; $2 role; $3 sha256 of the key. Returns null when the name is taken.
export async function createOperator(db: Db, name: string, role: Role, keyHash: Buffer): Promise<OperatorRecord | null> {
  const { rows } = await db.query("insert into operators (name, role, key_hash) values ($1, $2, $3) on conflict (name) do nothing returning *", [
    name,
    role,
    keyHash,
  ]);
  return rows[0] ? toOperator(rows[0]) : null;
}

export async function listOperators(db: Db): Promise<OperatorRecord[]> {
  const { rows } = await db.query("select * from operators order by name");
  return rows.map(toOperator);
}

export async function getOperator(db: Db, name: string): Promise<OperatorRecord | null> {
  const { rows } = await db.query("select * from operators where name = $1", [name]);
  return rows[0] ? toOperator(rows[0]) : null;
}

// $1 name; $2 new role. The last admin among the operators may be demoted: the admin key
// (TIDINGS_ADMIN_KEY) always stays an admin, so nobody is locked out.
export async function setOperatorRole(db: Db, name: string, role: Role): Promise<OperatorRecord | null> {
  const { rows } = await db.query("update operators set role = $2, updated_at = now() where name = $1 returning *", [name, role]);
  return rows[0] ? toOperator(rows[0]) : null;
}

// $1 name; $2 sha256 of the new key. The old key stops working, and the sessions signed in with
// it end, in the same statement.
export async function rotateOperatorKey(db: Db, name: string, keyHash: Buffer): Promise<OperatorRecord | null> {
  const { rows } = await db.query(
    `with changed as (update operators set key_hash = $2, updated_at = now() where name = $1 returning *),
          ended as (delete from console_sessions s using changed where s.operator_id = changed.id)
     select * from changed`,
    [name, keyHash],
  );
  return rows[0] ? toOperator(rows[0]) : null;
}

/** Deletes an operator: their key stops working and their console sessions end (cascade). */
export async function deleteOperator(db: Db, name: string): Promise<OperatorRecord | null> {
  const { rows } = await db.query("delete from operators where name = $1 returning *", [name]);
  return rows[0] ? toOperator(rows[0]) : null;
}

/** The operator a key belongs to. */
export async function operatorByKeyHash(db: Db, keyHash: Buffer): Promise<{ id: number; name: string; role: Role } | null> {
  const { rows } = await db.query({ name: "operator_by_key", text: "select id, name, role from operators where key_hash = $1", values: [keyHash] });
  return rows[0] ? { id: rows[0].id, name: rows[0].name, role: rows[0].role } : null;
}
