import type { Bindings } from './env';
import type { KeyAuth } from './key-auth';

/** Per-request values, typed (STYLE.md: never an untyped c.get). */
export interface Variables {
  requestId: string;
  functionName: string;
  auth: KeyAuth;
  actor: string;
}

export interface AppEnv {
  Bindings: Bindings;
  Variables: Variables;
}
