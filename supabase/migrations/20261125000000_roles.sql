-- Supabase ships the API roles; a plain Postgres (CI, local embedded) does not.
-- This makes the later migrations portable and is a no-op on Supabase.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
end
$$;

grant usage on schema public to anon, authenticated, service_role;
-- Supabase's default privileges: the API roles see every table; row level security decides what they get.
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
-- Functions are not callable by the public roles unless a migration grants it (see the RPC migration).
alter default privileges in schema public revoke execute on functions from public;
