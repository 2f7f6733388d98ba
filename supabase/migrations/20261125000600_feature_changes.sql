-- Feature changes name their action in the audit log, and any audited change can be reverted.
drop function public.update_deployment(uuid, jsonb, text);

create function public.update_deployment(p_id uuid, p_patch jsonb, p_actor text, p_action text default 'deployment.updated')
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
  perform public.set_audit_context(p_actor, coalesce(p_action, 'deployment.updated'));
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

-- One-click revert (seed 004 §7): applies the "old" side of an audit row's diff, as a new audited
-- change. Only changes of deployment settings can be reverted (not key events).
create function public.revert_audit(p_deployment_id uuid, p_audit_id bigint, p_actor text)
returns jsonb
language plpgsql
as $$
declare
  a public.audit_logs;
  d public.deployments;
  e record;
  v_col text;
  v_sub text;
begin
  select * into a from public.audit_logs where id = p_audit_id and deployment_id = p_deployment_id;
  if not found then
    raise exception 'audit entry % not found for deployment %', p_audit_id, p_deployment_id using errcode = 'P0002';
  end if;
  if a.action not like 'deployment.%' and a.action not like 'feature.%' and a.action not like 'preset.%' then
    raise exception 'audit entry % (%) cannot be reverted', p_audit_id, a.action using errcode = '22023', hint = 'auditId';
  end if;
  if a.action = 'deployment.created' or a.action = 'deployment.deleted' then
    raise exception 'creating or deleting a deployment cannot be reverted' using errcode = '22023', hint = 'auditId';
  end if;
  perform 1 from public.deployments where id = p_deployment_id for update;
  perform public.set_audit_context(p_actor, 'deployment.reverted');
  for e in select key, value from jsonb_each(a.diff) loop
    v_col := split_part(e.key, '.', 1);
    v_sub := nullif(substr(e.key, length(v_col) + 2), '');
    if v_col not in ('name', 'type', 'features', 'rate_limits', 'budgets', 'routing', 'allowed_origins', 'monitoring', 'timezone') then
      continue;
    end if;
    if v_sub is not null then
      if e.value -> 'old' is null or jsonb_typeof(e.value -> 'old') = 'null' then
        execute format('update public.deployments set %I = %I - $1 where id = $2', v_col, v_col) using v_sub, p_deployment_id;
      else
        execute format('update public.deployments set %I = jsonb_set(%I, array[$1], $2) where id = $3', v_col, v_col) using v_sub, e.value -> 'old', p_deployment_id;
      end if;
    else
      execute format('update public.deployments set %I = (jsonb_populate_record(null::public.deployments, jsonb_build_object(%L, $1))).%I where id = $2', v_col, v_col, v_col)
        using e.value -> 'old', p_deployment_id;
    end if;
  end loop;
  select * into d from public.deployments where id = p_deployment_id;
  return public.deployment_json(d);
end
$$;

revoke execute on function public.update_deployment(uuid, jsonb, text, text) from public, anon, authenticated;
revoke execute on function public.revert_audit(uuid, bigint, text) from public, anon, authenticated;
grant execute on function public.update_deployment(uuid, jsonb, text, text) to service_role;
grant execute on function public.revert_audit(uuid, bigint, text) to service_role;
