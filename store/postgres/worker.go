package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
)

type workerRow struct {
	ID           string    `db:"id"`
	Service      string    `db:"service"`
	BaseURL      string    `db:"base_url"`
	APIs         []string  `db:"apis"`
	Listeners    []string  `db:"listeners"`
	RegisteredAt time.Time `db:"registered_at"`
	HeartbeatAt  time.Time `db:"heartbeat_at"`
	ExpiresAt    time.Time `db:"expires_at"`
}

func (r *workerRow) worker() gateway.Worker {
	return gateway.Worker{
		ID: r.ID, Service: r.Service, BaseURL: r.BaseURL, APIs: r.APIs, Listeners: r.Listeners,
		RegisteredAt: r.RegisteredAt.UTC(), HeartbeatAt: r.HeartbeatAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
	}
}

const workerColumns = `id, service, base_url, apis, listeners, registered_at, heartbeat_at, expires_at`

// apiDefinition is what lightbus_api.definition holds.
type apiDefinition struct {
	Events []gateway.EventDeclaration `json:"events"`
	RPCs   []gateway.RPCDeclaration   `json:"rpcs"`
}

// definitionOf returns what lightbus_api.definition keeps of a declared
// API: names and timeouts, without schemas (those live in lightbus_schema).
func definitionOf(a gateway.APIDeclaration) apiDefinition {
	def := apiDefinition{Events: make([]gateway.EventDeclaration, len(a.Events)), RPCs: make([]gateway.RPCDeclaration, len(a.RPCs))}
	for i, e := range a.Events {
		def.Events[i] = gateway.EventDeclaration{Name: e.Name}
	}
	for i, r := range a.RPCs {
		def.RPCs[i] = gateway.RPCDeclaration{Name: r.Name, TimeoutMS: r.TimeoutMS}
	}
	return def
}

// rotates is true in RegisterWorker's upsert when the PUT comes from
// another instance of the worker than the stored one.
const rotates = `(EXCLUDED.instance_id <> '' AND EXCLUDED.instance_id <> lightbus_worker.instance_id)`

// RegisterWorker implements gateway.WorkerStore.
func (db *DB) RegisterWorker(ctx context.Context, reg *gateway.Registration, newSecret func() string, maxAttempts int) (*gateway.RegistrationResult, error) {
	// A registration can change groups' policies and endpoints, its own
	// and (when the worker changes service) others'.
	defer db.groups.clear()
	apis := make([]string, len(reg.APIs))
	for i, a := range reg.APIs {
		apis[i] = a.Name
	}
	slices.Sort(apis)
	listeners := make([]gateway.ListenerDeclaration, len(reg.Listeners))
	copy(listeners, reg.Listeners)
	slices.SortFunc(listeners, func(a, b gateway.ListenerDeclaration) int { return strings.Compare(a.Name, b.Name) })
	listenerNames := make([]string, len(listeners))
	for i, l := range listeners {
		listenerNames[i] = l.Name
	}

	res := &gateway.RegistrationResult{Listeners: []gateway.ListenerGrant{}}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		// Serialise registrations that touch the same APIs, in a fixed
		// order, so that two services cannot both claim one API.
		for _, name := range apis {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('lightbus_api:' || $1))`, name); err != nil {
				return err
			}
		}
		// The first service to register an API owns it until an admin
		// releases it, whether or not its workers are live.
		if _, err := tx.Exec(ctx, `
			INSERT INTO lightbus_api_owner (api, service) SELECT unnest($1::text[]), $2
			ON CONFLICT (api) DO NOTHING`, apis, reg.Service); err != nil {
			return err
		}
		var owner, ownedAPI string
		err := tx.QueryRow(ctx, `
			SELECT api, service FROM lightbus_api_owner
			WHERE api = ANY($1) AND service <> $2 ORDER BY api LIMIT 1`, apis, reg.Service).Scan(&ownedAPI, &owner)
		if err == nil {
			return gateway.Errorf(gateway.EConflict, "API %q is owned by service %q: an API belongs to the service that first registered it, until an admin releases it (DELETE /v1/apis/%s/owner)", ownedAPI, owner, ownedAPI)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		for _, a := range reg.APIs {
			def, err := json.Marshal(definitionOf(a))
			if err != nil {
				return fmt.Errorf("encode API definition: %w", err)
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO lightbus_api (name, service, definition) VALUES ($1, $2, $3)
				ON CONFLICT (name) DO UPDATE SET service = EXCLUDED.service, definition = EXCLUDED.definition, updated_at = now()
				WHERE lightbus_api.service <> EXCLUDED.service OR lightbus_api.definition <> EXCLUDED.definition`,
				a.Name, reg.Service, string(def)); err != nil { // a string: a []byte is bytea without a describe
				return err
			}
		}

		// A PUT from another instance of the worker (a new process) is a
		// registration: it gets a new RPC secret, and the replaced one
		// signs too for the overlap. A heartbeat (the same instance, or
		// none sent) keeps the secret; a worker without one gets one.
		rows, err := tx.Query(ctx, `
			INSERT INTO lightbus_worker (id, service, base_url, apis, listeners, lease_ttl_ms, expires_at, instance_id, rpc_secret, tasks)
			VALUES ($1, $2, $3, $4, $5, $6::integer, now() + $6::integer * interval '1 millisecond', $7, $8, $10)
			ON CONFLICT (id) DO UPDATE SET
				service = EXCLUDED.service, base_url = EXCLUDED.base_url, apis = EXCLUDED.apis,
				listeners = EXCLUDED.listeners, lease_ttl_ms = EXCLUDED.lease_ttl_ms, tasks = EXCLUDED.tasks,
				heartbeat_at = now(), expires_at = EXCLUDED.expires_at,
				instance_id = CASE WHEN EXCLUDED.instance_id = '' THEN lightbus_worker.instance_id ELSE EXCLUDED.instance_id END,
				registered_at = CASE WHEN `+rotates+` THEN now() ELSE lightbus_worker.registered_at END,
				rpc_secret = CASE WHEN `+rotates+` OR lightbus_worker.rpc_secret = '' THEN EXCLUDED.rpc_secret ELSE lightbus_worker.rpc_secret END,
				rpc_secret_previous = CASE WHEN `+rotates+` THEN lightbus_worker.rpc_secret ELSE lightbus_worker.rpc_secret_previous END,
				rpc_secret_previous_until = CASE WHEN `+rotates+` THEN now() + $9::bigint * interval '1 millisecond' ELSE lightbus_worker.rpc_secret_previous_until END
			RETURNING `+workerColumns+`, rpc_secret`,
			reg.WorkerID, reg.Service, reg.BaseURL, apis, listenerNames, reg.LeaseTTL().Milliseconds(),
			reg.InstanceID, newSecret(), db.secretOverlap.Milliseconds(), taskNames(reg))
		if err != nil {
			return err
		}
		w, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[struct {
			workerRow
			RPCSecret string `db:"rpc_secret"`
		}])
		if err != nil {
			return err
		}
		res.Worker = w.worker()
		res.RPCSecret = w.RPCSecret

		// Endpoints of groups this worker no longer serves go away.
		if _, err := tx.Exec(ctx, `
			DELETE FROM lightbus_endpoint WHERE worker_id = $1 AND NOT (service = $2 AND listener = ANY($3))`,
			reg.WorkerID, reg.Service, listenerNames); err != nil {
			return err
		}
		for _, l := range listeners {
			grant, created, positioned, err := registerListener(ctx, tx, reg, l, newSecret(), maxAttempts)
			if err != nil {
				return err
			}
			since, _ := gateway.ParseSince(l.Since) // validated by Registration.Validate
			if !created {
				since = gateway.Since{Now: true}
			}
			ordered := l.Policy != nil && l.Policy.Ordered
			if ordered || positioned {
				if err := db.registerOrdered(ctx, tx, reg.Service, l.Name, ordered, positioned, since); err != nil {
					return err
				}
			} else if !since.Now {
				if _, err := db.startReplayTx(ctx, tx, reg.Service, l.Name, since, false); err != nil {
					return err
				}
			}
			res.Listeners = append(res.Listeners, grant)
		}
		if err := registerSchemas(ctx, tx, reg, res); err != nil {
			return err
		}
		// Last: its lock serialises the service's registrations until
		// commit, and every other lock is taken before it.
		res.Tasks, err = registerTasks(ctx, tx, reg)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// registerListener creates or updates one listener group, its subscriptions
// (the latest registration's set wins) and this worker's endpoint for it.
// It reports whether the group was created and whether it had a position
// as an ordered group (lightbus_ordered).
func registerListener(ctx context.Context, tx pgx.Tx, reg *gateway.Registration, l gateway.ListenerDeclaration, secret string, maxAttempts int) (grant gateway.ListenerGrant, created, positioned bool, err error) {
	grant = gateway.ListenerGrant{Service: reg.Service, Name: l.Name, Events: l.Events}
	var p gateway.DeliveryPolicy
	if l.Policy != nil {
		p = *l.Policy
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = maxAttempts
	}
	var b gateway.Backoff
	if p.Backoff != nil {
		b = *p.Backoff
	}
	err = tx.QueryRow(ctx, `
		INSERT INTO lightbus_listener (service, name, secret, max_attempts, backoff_base_ms, backoff_max_ms, timeout_ms, max_in_flight, ordered)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (service, name) DO UPDATE SET updated_at = now(),
			max_attempts = EXCLUDED.max_attempts, backoff_base_ms = EXCLUDED.backoff_base_ms,
			backoff_max_ms = EXCLUDED.backoff_max_ms, timeout_ms = EXCLUDED.timeout_ms,
			max_in_flight = EXCLUDED.max_in_flight, ordered = EXCLUDED.ordered
		RETURNING secret, xmax = 0,
			EXISTS (SELECT 1 FROM lightbus_ordered o WHERE o.service = $1 AND o.listener = $2)`,
		reg.Service, l.Name, secret, p.MaxAttempts, b.BaseMS, b.MaxMS, p.TimeoutMS, p.MaxInFlight, p.Ordered).
		Scan(&grant.Secret, &created, &positioned)
	if err != nil {
		return grant, false, false, err
	}
	grant.Policy = policy(p.MaxAttempts, b.BaseMS, b.MaxMS, p.TimeoutMS, p.MaxInFlight)
	grant.Policy.Ordered = p.Ordered
	apis := make([]string, len(l.Events))
	events := make([]string, len(l.Events))
	for i, e := range l.Events {
		api, event, _ := gateway.SplitQualified("event", e) // validated by Registration.Validate
		apis[i], events[i] = api, event
	}
	if _, err := tx.Exec(ctx, `
		DELETE FROM lightbus_subscription s
		WHERE s.service = $1 AND s.listener = $2
		  AND (s.api, s.event) NOT IN (SELECT * FROM unnest($3::text[], $4::text[]))`,
		reg.Service, l.Name, apis, events); err != nil {
		return grant, false, false, err
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO lightbus_subscription (api, event, service, listener)
		SELECT a, e, $1, $2 FROM unnest($3::text[], $4::text[]) AS t(a, e)
		ON CONFLICT DO NOTHING`, reg.Service, l.Name, apis, events); err != nil {
		return grant, false, false, err
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO lightbus_endpoint (service, listener, worker_id, path) VALUES ($1, $2, $3, $4)
		ON CONFLICT (service, listener, worker_id) DO UPDATE SET path = EXCLUDED.path
		WHERE lightbus_endpoint.path <> EXCLUDED.path`, reg.Service, l.Name, reg.WorkerID, l.Path); err != nil {
		return grant, false, false, err
	}
	return grant, created, positioned, nil
}

// ReleaseAPI implements gateway.WorkerStore.
func (db *DB) ReleaseAPI(ctx context.Context, api string) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		// The lock RegisterWorker takes for the API: no registration can
		// claim it between the check and the delete.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('lightbus_api:' || $1))`, api); err != nil {
			return err
		}
		var owner string
		var live bool
		err := tx.QueryRow(ctx, `
			SELECT o.service, EXISTS (
				SELECT 1 FROM lightbus_worker w
				WHERE o.api = ANY(w.apis) AND w.service = o.service AND w.expires_at > now())
			FROM lightbus_api_owner o WHERE o.api = $1`, api).Scan(&owner, &live)
		if errors.Is(err, pgx.ErrNoRows) {
			return gateway.Errorf(gateway.ENotFound, "API %q has no owner", api)
		}
		if err != nil {
			return err
		}
		if live {
			return gateway.Errorf(gateway.EConflict, "API %q is provided by a live worker of its owner, service %q: stop its workers first (their next heartbeat would claim the API again)", api, owner)
		}
		_, err = tx.Exec(ctx, `DELETE FROM lightbus_api_owner WHERE api = $1`, api)
		return err
	})
}

// DeregisterWorker implements gateway.WorkerStore.
func (db *DB) DeregisterWorker(ctx context.Context, id string) error {
	defer db.groups.clear()
	_, err := db.pool.Exec(ctx, `DELETE FROM lightbus_worker WHERE id = $1`, id)
	return translate(err)
}

// ListWorkers implements gateway.WorkerStore.
func (db *DB) ListWorkers(ctx context.Context) ([]gateway.Worker, error) {
	rows, err := db.read.Query(ctx, `SELECT `+workerColumns+` FROM lightbus_worker WHERE expires_at > now() ORDER BY service, id`)
	if err != nil {
		return nil, translate(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[workerRow])
	if err != nil {
		return nil, translate(err)
	}
	workers := make([]gateway.Worker, len(got))
	for i := range got {
		workers[i] = got[i].worker()
	}
	return workers, nil
}

// RPCTargets implements dispatch.RPCStore.
func (db *DB) RPCTargets(ctx context.Context, api, method string) ([]gateway.RPCTarget, time.Duration, error) {
	var targets []gateway.RPCTarget
	var timeoutMS int64
	batch := &pgx.Batch{}
	batch.Queue(`
		SELECT id, base_url, expires_at, array_remove(ARRAY[rpc_secret,
			CASE WHEN rpc_secret_previous_until > now() THEN rpc_secret_previous ELSE '' END], '')
		FROM lightbus_worker
		WHERE $1 = ANY(apis) AND expires_at > now() ORDER BY id`, api).
		Query(func(rows pgx.Rows) error {
			var err error
			targets, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (gateway.RPCTarget, error) {
				var t gateway.RPCTarget
				err := r.Scan(&t.WorkerID, &t.BaseURL, &t.ExpiresAt, &t.Secrets)
				return t, err
			})
			return err
		})
	batch.Queue(`
		SELECT COALESCE(max((r->>'timeout_ms')::bigint), 0)
		FROM lightbus_api a, jsonb_array_elements(a.definition->'rpcs') r
		WHERE a.name = $1 AND r->>'name' = $2`, api, method).
		QueryRow(func(r pgx.Row) error { return r.Scan(&timeoutMS) })
	if err := db.pool.SendBatch(ctx, batch).Close(); err != nil {
		return nil, 0, translate(err)
	}
	return targets, time.Duration(timeoutMS) * time.Millisecond, nil
}

// policy builds a group's policy from its stored columns.
func policy(maxAttempts, baseMS, maxMS, timeoutMS, maxInFlight int) gateway.DeliveryPolicy {
	p := gateway.DeliveryPolicy{MaxAttempts: maxAttempts, TimeoutMS: timeoutMS, MaxInFlight: maxInFlight}
	if baseMS != 0 || maxMS != 0 {
		p.Backoff = &gateway.Backoff{BaseMS: baseMS, MaxMS: maxMS}
	}
	return p
}
