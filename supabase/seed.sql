-- Local demo data: two sandbox deployments and their keys. These demo keys exist only in local
-- databases seeded from this file; never seed a shared or production database with it.
begin;
select set_config('inference_edge.actor', 'seed', true);

insert into public.deployments (id, name, type, environment, features, rate_limits, budgets, routing, allowed_origins, monitoring, timezone)
values
  ('00000000-0000-4000-8000-000000000001', 'Demo public chat widget', 'public', 'sandbox',
   '{"inference": true, "streaming": true, "smartRouting": false, "visionEnabled": false, "piiRedaction": true, "multiModelComparison": false}',
   '{"requestsPerMinute": 10, "requestsPerHour": 100, "requestsPerDay": 1000, "tokensPerRequest": 4000, "tokensPerDay": 50000}',
   '{}', '{}', '{http://localhost:5173,http://127.0.0.1:5173}',
   '{"alertThresholds": {"errorRate": 0.05, "avgLatencyMs": 3000, "tokenBudgetPercent": [80, 90, 100]}}', 'UTC'),
  ('00000000-0000-4000-8000-000000000002', 'Demo internal assistant', 'internal', 'sandbox',
   '{"inference": true, "streaming": true, "smartRouting": true, "visionEnabled": true, "piiRedaction": false, "multiModelComparison": true}',
   '{"requestsPerMinute": 60, "requestsPerHour": 1000, "requestsPerDay": 10000, "tokensPerRequest": 16000, "tokensPerDay": 500000}',
   '{}', '{}', '{}',
   '{"alertThresholds": {"errorRate": 0.05, "avgLatencyMs": 3000, "tokenBudgetPercent": [80, 90, 100]}}', 'UTC')
on conflict (id) do nothing;

insert into public.api_keys (deployment_id, kind, key_hash, prefix, environment)
select v.deployment_id::uuid, v.kind, encode(sha256(convert_to(v.key, 'UTF8')), 'hex'), left(v.key, 12), 'sandbox'
from (values
  ('00000000-0000-4000-8000-000000000001', 'publishable', 'pk_test_demoPublicWidget0000000000000000'),
  ('00000000-0000-4000-8000-000000000001', 'secret',      'sk_test_demoPublicWidget0000000000000000'),
  ('00000000-0000-4000-8000-000000000002', 'publishable', 'pk_test_demoInternalAssist00000000000000'),
  ('00000000-0000-4000-8000-000000000002', 'secret',      'sk_test_demoInternalAssist00000000000000')
) as v(deployment_id, kind, key)
on conflict (key_hash) do nothing;

commit;
