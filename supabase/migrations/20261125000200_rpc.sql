-- RPC-first data access: every read and write the Workers make is one of these functions, called
-- with supabase-js .rpc(). One round trip each, atomic (a change and its audit row commit together).
-- They speak the API's camelCase JSON so the Workers map nothing. Errors use SQLSTATEs the Workers
-- map to HTTP: P0002 not found (404), 22023 invalid parameter (400), 23505 conflict (409).

create function public.deployment_json(d public.deployments)
returns jsonb
language sql stable
as $$
  select jsonb_build_object(
    'id', d.id, 'name', d.name, 'type', d.type, 'environment', d.environment,
    'features', d.features, 'rateLimits', d.rate_limits, 'budgets', d.budgets, 'routing', d.routing,
    'allowedOrigins', to_jsonb(d.allowed_origins), 'monitoring', d.monitoring, 'timezone', d.timezone,
    'configVersion', d.config_version, 'createdBy', d.created_by,
    'createdAt', d.created_at, 'updatedAt', d.updated_at)
$$;

create function public.api_key_json(k public.api_keys)
returns jsonb
language sql stable
as $$
  select jsonb_build_object(
    'id', k.id, 'kind', k.kind, 'prefix', k.prefix, 'environment', k.environment,
    'createdAt', k.created_at, 'revokedAt', k.revoked_at, 'lastUsedAt', k.last_used_at)
$$;

create function public.set_audit_context(p_actor text, p_action text default null)
returns void
language sql
as $$
  select set_config('inference_edge.actor', coalesce(nullif(p_actor, ''), 'api'), true),
         set_config('inference_edge.action', coalesce(p_action, ''), true)
$$;

create function public.health_check()
returns jsonb
language sql stable
as $$ select jsonb_build_object('ok', true, 'now', now(), 'version', current_setting('server_version')) $$;

create function public.insert_api_keys(p_deployment public.deployments, p_keys jsonb)
returns jsonb
language sql
as $$
  with ins as (
    insert into public.api_keys (deployment_id, kind, key_hash, prefix, environment)
    select p_deployment.id, k ->> 'kind', k ->> 'keyHash', k ->> 'prefix', p_deployment.environment
    from jsonb_array_elements(p_keys) k
    returning *
  )
  select coalesce(jsonb_agg(public.api_key_json(ins) order by ins.kind), '[]'::jsonb) from ins
$$;

create function public.create_deployment(p_deployment jsonb, p_keys jsonb, p_actor text)
returns jsonb
language plpgsql
as $$
declare
  d public.deployments;
  v_keys jsonb;
begin
  perform public.set_audit_context(p_actor, 'deployment.created');
  insert into public.deployments (name, type, environment, features, rate_limits, budgets, routing,
                                  allowed_origins, monitoring, timezone)
  values (
    p_deployment ->> 'name',
    p_deployment ->> 'type',
    coalesce(p_deployment ->> 'environment', 'sandbox'),
    coalesce(p_deployment -> 'features', '{}'),
    coalesce(p_deployment -> 'rateLimits', '{}'),
    coalesce(p_deployment -> 'budgets', '{}'),
    coalesce(p_deployment -> 'routing', '{}'),
    coalesce(array(select jsonb_array_elements_text(p_deployment -> 'allowedOrigins')), '{}'),
    coalesce(p_deployment -> 'monitoring', '{}'),
    coalesce(p_deployment ->> 'timezone', 'UTC'))
  returning * into d;
  v_keys := public.insert_api_keys(d, p_keys);
  select * into d from public.deployments where id = d.id;
  return public.deployment_json(d) || jsonb_build_object('keys', v_keys);
end
$$;

create function public.list_deployments(p_limit integer default 50, p_offset integer default 0)
returns jsonb
language sql stable
as $$
  select jsonb_build_object(
    'deployments', coalesce((
      select jsonb_agg(public.deployment_json(d) order by d.created_at desc, d.id)
      from (select * from public.deployments order by created_at desc, id
            limit least(greatest(p_limit, 1), 500) offset greatest(p_offset, 0)) d), '[]'::jsonb),
    'total', (select count(*) from public.deployments))
$$;

create function public.get_deployment(p_id uuid)
returns jsonb
language plpgsql stable
as $$
declare
  d public.deployments;
begin
  select * into d from public.deployments where id = p_id;
  if not found then
    raise exception 'deployment % not found', p_id using errcode = 'P0002';
  end if;
  return public.deployment_json(d) || jsonb_build_object('keys', coalesce((
    select jsonb_agg(public.api_key_json(k) order by k.created_at desc, k.kind)
    from public.api_keys k where k.deployment_id = p_id), '[]'::jsonb));
end
$$;

-- JSON merge patch, one level deep: {"features": {"smartRouting": true}} changes one flag,
-- {"features": {"old": null}} removes one; scalar fields are replaced.
create function public.merge_patch(p_current jsonb, p_patch jsonb)
returns jsonb
language sql immutable
as $$
  select case when p_patch is null then p_current
              else (p_current || p_patch) - array(select key from jsonb_each(p_patch) where value = 'null'::jsonb)
         end
$$;

create function public.update_deployment(p_id uuid, p_patch jsonb, p_actor text)
returns jsonb
language plpgsql
as $$
declare
  d public.deployments;
begin
  select * into d from public.deployments where id = p_id for update;
  if not found then
    raise exception 'deployment % not found', p_id using errcode = 'P0002';
  end if;
  if p_patch ? 'environment' and p_patch ->> 'environment' is distinct from d.environment then
    raise exception 'environment cannot change: keys are bound to it; create a new deployment'
      using errcode = '22023', hint = 'environment';
  end if;
  perform public.set_audit_context(p_actor, 'deployment.updated');
  update public.deployments set
    name            = coalesce(p_patch ->> 'name', name),
    type            = coalesce(p_patch ->> 'type', type),
    features        = public.merge_patch(features, p_patch -> 'features'),
    rate_limits     = public.merge_patch(rate_limits, p_patch -> 'rateLimits'),
    budgets         = public.merge_patch(budgets, p_patch -> 'budgets'),
    routing         = public.merge_patch(routing, p_patch -> 'routing'),
    monitoring      = public.merge_patch(monitoring, p_patch -> 'monitoring'),
    allowed_origins = case when p_patch ? 'allowedOrigins'
                           then array(select jsonb_array_elements_text(p_patch -> 'allowedOrigins'))
                           else allowed_origins end,
    timezone        = coalesce(p_patch ->> 'timezone', timezone)
  where id = p_id
  returning * into d;
  return public.deployment_json(d);
end
$$;

-- Issues new keys; with p_revoke_existing (rotation) every active key of the deployment is revoked
-- in the same transaction. Answers the new keys' metadata and the hashes that stopped working.
create function public.create_api_keys(p_deployment_id uuid, p_keys jsonb, p_actor text, p_revoke_existing boolean default true)
returns jsonb
language plpgsql
as $$
declare
  d public.deployments;
  v_revoked jsonb := '[]'::jsonb;
  v_keys jsonb;
begin
  select * into d from public.deployments where id = p_deployment_id for update;
  if not found then
    raise exception 'deployment % not found', p_deployment_id using errcode = 'P0002';
  end if;
  perform public.set_audit_context(p_actor);
  if p_revoke_existing then
    with r as (
      update public.api_keys set revoked_at = now()
      where deployment_id = p_deployment_id and revoked_at is null
      returning key_hash)
    select coalesce(jsonb_agg(key_hash), '[]'::jsonb) into v_revoked from r;
  end if;
  v_keys := public.insert_api_keys(d, p_keys);
  select * into d from public.deployments where id = p_deployment_id;
  return jsonb_build_object('keys', v_keys, 'revokedKeyHashes', v_revoked, 'configVersion', d.config_version);
end
$$;

create function public.revoke_api_key(p_deployment_id uuid, p_key_id uuid, p_actor text)
returns jsonb
language plpgsql
as $$
declare
  k public.api_keys;
  v_version bigint;
begin
  perform public.set_audit_context(p_actor);
  update public.api_keys set revoked_at = coalesce(revoked_at, now())
  where id = p_key_id and deployment_id = p_deployment_id
  returning * into k;
  if not found then
    raise exception 'key % not found on deployment %', p_key_id, p_deployment_id using errcode = 'P0002';
  end if;
  select config_version into v_version from public.deployments where id = p_deployment_id;
  return jsonb_build_object('key', public.api_key_json(k), 'keyHash', k.key_hash, 'configVersion', v_version);
end
$$;

-- The cold path of key auth. Answers null for an unknown hash. last_used_at is touched at most once
-- a minute, and only here (the warm path never reaches Postgres), so it means "last resolved".
create function public.resolve_api_key(p_key_hash text)
returns jsonb
language plpgsql
as $$
declare
  k public.api_keys;
  d public.deployments;
begin
  select * into k from public.api_keys where key_hash = p_key_hash;
  if not found then
    return null;
  end if;
  select * into d from public.deployments where id = k.deployment_id;
  if k.revoked_at is null and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute') then
    update public.api_keys set last_used_at = now() where id = k.id;
  end if;
  return jsonb_build_object(
    'key', public.api_key_json(k) || jsonb_build_object('deploymentId', k.deployment_id),
    'deployment', public.deployment_json(d));
end
$$;

create function public.get_config_version(p_deployment_id uuid)
returns bigint
language sql stable
as $$ select config_version from public.deployments where id = p_deployment_id $$;

create function public.list_audit_logs(p_deployment_id uuid, p_limit integer default 50, p_before_id bigint default null)
returns jsonb
language sql stable
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
      'id', a.id, 'deploymentId', a.deployment_id, 'action', a.action, 'actor', a.actor,
      'source', a.source, 'diff', a.diff, 'createdAt', a.created_at) order by a.id desc), '[]'::jsonb)
  from (select * from public.audit_logs
        where deployment_id = p_deployment_id and (p_before_id is null or id < p_before_id)
        order by id desc limit least(greatest(p_limit, 1), 500)) a
$$;

-- Only the service role (the Workers) may call the API's functions.
do $$
declare
  f regprocedure;
begin
  for f in select p.oid::regprocedure from pg_proc p where p.pronamespace = 'public'::regnamespace loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
