// A partner's and an officer's lifecycle through openapi-fetch clients typed by openapi-typescript from the
// committed OpenAPI documents, over real HTTP against a running desk.
//
//   node lifecycle.js apply   -> token, partner, company, draft, check, submit, receipt, evaluation (admissible),
//                                two reviews, credit class, funding computed
//   node lifecycle.js decide  -> (after the call's window has closed) allocation, decree, decisions, CUP, COR,
//                                four-eyes close, the partner reads and accepts the decision; at monitoring the
//                                project and its advance, the IBAN (confirmed), four-eyes payment; a final claim
//
// Input: environment variables (DESK_*); state from `apply` comes back to `decide` in DESK_STATE. Output: one
// JSON object on stdout; any unexpected answer exits with status 1 and the problem on stderr.
import createClient from "openapi-fetch";
import type { components as Ev, paths as EvaluationPaths } from "./generated/evaluation.js";
import type { components as In, paths as IntakePaths } from "./generated/intake.js";
import type { components as Mo, paths as MonitoringPaths } from "./generated/monitoring.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`missing environment variable ${name}`);
  return value;
}

type Answer<T> = { data?: T; error?: unknown; response: Response };

function ok<T>(what: string, answer: Answer<T>, status?: number): T {
  const { data, error, response } = answer;
  if (error !== undefined || data === undefined || (status !== undefined && response.status !== status)) {
    throw new Error(`${what}: HTTP ${response.status} ${JSON.stringify(error ?? data)}`);
  }
  return data;
}

function etagOf(what: string, response: Response): string {
  const etag = response.headers.get("ETag");
  if (!etag) throw new Error(`${what}: no ETag`);
  return etag;
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, seconds = 30): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const got = await probe();
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const intakeUrl = env("DESK_INTAKE_URL");
const evaluationUrl = env("DESK_EVALUATION_URL");
const monitoringUrl = env("DESK_MONITORING_URL");
const secret = env("DESK_OFFICER_SECRET");

async function token(clientId: string, clientSecret: string): Promise<string> {
  const intake = createClient<IntakePaths>({ baseUrl: intakeUrl });
  const answer = await intake.POST("/v1/oauth/token", {
    body: { grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret },
    bodySerializer: (body) => new URLSearchParams(body as Record<string, string>),
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  const got = ok("token", answer, 200);
  if (got.token_type !== "Bearer") throw new Error(`token type ${got.token_type}`);
  return got.access_token;
}

function clients(bearer: string) {
  const headers = { Authorization: `Bearer ${bearer}` };
  return {
    intake: createClient<IntakePaths>({ baseUrl: intakeUrl, headers }),
    evaluation: createClient<EvaluationPaths>({ baseUrl: evaluationUrl, headers }),
    monitoring: createClient<MonitoringPaths>({ baseUrl: monitoringUrl, headers }),
  };
}

type State = {
  partner_client_id: string;
  partner_client_secret: string;
  company_id: string;
  application_id: string;
  protocol_number: number;
};

async function apply(): Promise<Record<string, unknown>> {
  const officer = clients(await token(env("DESK_OFFICER_CLIENT_ID"), secret));
  const partner = ok(
    "register the partner",
    await officer.intake.POST("/v1/partners", {
      body: { name: "Associazione Export Lombardia", kind: "trade_association", fiscal_code: env("DESK_PARTNER_FISCAL_CODE") },
    }),
    201,
  );
  const creds = ok(
    "the partner's API client",
    await officer.intake.POST("/v1/partners/{partner_id}/clients", {
      params: { path: { partner_id: partner.id } },
      body: { name: "Front-end TypeScript" },
    }),
    201,
  );
  const me = clients(await token(creds.client_id, creds.client_secret));

  const companyBody = JSON.parse(env("DESK_COMPANY_BODY")) as In["schemas"]["CompanyIn"];
  const company = ok("register the company", await me.intake.POST("/v1/companies", { body: companyBody }), 201);
  const draftBody = JSON.parse(env("DESK_DRAFT_BODY")) as In["schemas"]["ApplicationCreate"];
  draftBody.company_id = company.id;
  const draft = ok("draft", await me.intake.POST("/v1/applications", { body: draftBody }), 201);
  const path = { params: { path: { application_id: draft.id } } };
  // the stamp duty (marca da bollo) the call requires before submit: one identifier per application
  const stamp = `${Date.now()}${Math.floor(Math.random() * 10)}`.padStart(14, "0").slice(-14);
  ok(
    "declare the stamp duty",
    await me.intake.PUT("/v1/applications/{application_id}/stamp-duty", {
      ...path,
      body: { identifier: stamp, issued_on: "2026-11-30" },
    }),
    200,
  );
  const check = ok("check", await me.intake.POST("/v1/applications/{application_id}/check", path), 200);
  if (!check.submittable) throw new Error(`not submittable: ${JSON.stringify(check.problems)}`);
  const submitted = ok("submit", await me.intake.POST("/v1/applications/{application_id}/submit", path), 201);
  const receipt = ok("receipt", await me.intake.GET("/v1/applications/{application_id}/receipt", path), 200);

  // the delivery worker brings the submission to evaluation, whose admissibility runs by itself
  const admitted = await until("the admissibility", async () => {
    const { data } = await officer.evaluation.GET("/v1/evaluations/{application_id}", path);
    return data && data.stage !== "received" ? data : undefined;
  });
  if (admitted.stage !== "admissible") throw new Error(`stage ${admitted.stage}: ${JSON.stringify(admitted.checks)}`);

  // merit: two reviewers each declare no conflict, score and submit
  const grid: Ev["schemas"]["ReviewIn"]["scores"] = {};
  for (const [code, points] of Object.entries(JSON.parse(env("DESK_SCORES")) as Record<string, number>)) {
    grid[code] = { points, comment: "Motivazione del punteggio." };
  }
  for (const reviewerId of env("DESK_REVIEWER_IDS").split(",")) {
    const reviewer = clients(await token(reviewerId, secret));
    const assigned = await officer.evaluation.POST("/v1/evaluations/{application_id}/assignments", {
      ...path,
      body: { reviewer: reviewerId },
    });
    const assignment = ok("assign a reviewer", assigned, 201);
    const at = { params: { path: { assignment_id: assignment.id } } };
    const declared = await reviewer.evaluation.POST("/v1/assignments/{assignment_id}/declaration", {
      ...at,
      body: { no_conflict: true, statement: "Nessun rapporto con l'impresa." },
      headers: { "If-Match": etagOf("assignment", assigned.response) },
    });
    ok("declaration", declared, 200);
    const scored = await reviewer.evaluation.PUT("/v1/assignments/{assignment_id}/review", {
      ...at,
      body: { scores: grid },
      headers: { "If-Match": etagOf("declaration", declared.response) },
    });
    ok("review", scored, 200);
    ok(
      "submit the review",
      await reviewer.evaluation.POST("/v1/assignments/{assignment_id}/review/submit", {
        ...at,
        headers: { "If-Match": etagOf("review", scored.response) },
      }),
      200,
    );
  }
  const merit = ok("merit", await officer.evaluation.GET("/v1/evaluations/{application_id}/merit", path), 200);
  const classed = await officer.evaluation.PUT("/v1/evaluations/{application_id}/credit-class", {
    ...path,
    body: { class_code: "1" },
    headers: { "If-Match": merit.etag },
  });
  ok("credit class", classed, 200);
  const funded = ok(
    "funding",
    await officer.evaluation.POST("/v1/evaluations/{application_id}/funding", {
      ...path,
      headers: { "If-Match": etagOf("credit class", classed.response) },
    }),
    200,
  );
  const state: State = {
    partner_client_id: creds.client_id,
    partner_client_secret: creds.client_secret,
    company_id: company.id,
    application_id: draft.id,
    protocol_number: receipt.receipt.protocol_number,
  };
  return {
    state,
    protocol_number: submitted.receipt.protocol_number,
    receipt_protocol_number: receipt.receipt.protocol_number,
    stage_after_admissibility: admitted.stage,
    eligible_total: admitted.eligible_total,
    merit_verdict: merit.merit_verdict,
    score: merit.score,
    stage: funded.stage,
    grant: funded.grant,
    loan: funded.loan,
  };
}

async function decide(): Promise<Record<string, unknown>> {
  const state = JSON.parse(env("DESK_STATE")) as State;
  const officer = clients(await token(env("DESK_OFFICER_CLIENT_ID"), secret));
  const second = clients(await token(env("DESK_SECOND_OFFICER_CLIENT_ID"), secret));
  const me = clients(await token(state.partner_client_id, state.partner_client_secret));
  const callId = env("DESK_CALL_ID");

  const allocation = ok(
    "allocation",
    await officer.evaluation.POST("/v1/calls/{call_id}/allocation", { params: { path: { call_id: callId } } }),
    200,
  );
  const decree = ok(
    "decree",
    await officer.evaluation.POST("/v1/decrees", {
      body: { call_id: callId, number: env("DESK_DECREE_NUMBER"), decree_date: env("DESK_DECREE_DATE") },
    }),
    201,
  );
  const atDecree = { params: { path: { decree_id: decree.id } } };
  const batch = ok(
    "decisions",
    await officer.evaluation.POST("/v1/decrees/{decree_id}/decisions", {
      ...atDecree,
      body: { all_pending: true },
      headers: { "If-Match": decree.etag },
    }),
    201,
  );
  const created = batch.created.find((d) => d.application_id === state.application_id);
  if (!created) throw new Error("no decision for the application");
  const atDecision = { params: { path: { decision_id: created.id } } };
  const withCup = await officer.evaluation.PUT("/v1/decisions/{decision_id}/cup", {
    ...atDecision,
    body: { cup: env("DESK_CUP") },
    headers: { "If-Match": created.etag },
  });
  ok("CUP", withCup, 200);
  ok(
    "COR",
    await officer.evaluation.PUT("/v1/decisions/{decision_id}/cor", {
      ...atDecision,
      body: { cor: env("DESK_COR") },
      headers: { "If-Match": etagOf("CUP", withCup.response) },
    }),
    200,
  );
  // four-eyes: one officer proposes the closing, a second one confirms it
  ok(
    "propose closing",
    await officer.evaluation.POST("/v1/decrees/{decree_id}/close", { ...atDecree, headers: { "If-Match": batch.decree.etag } }),
    202,
  );
  const closed = ok(
    "confirm closing",
    await second.evaluation.POST("/v1/decrees/{decree_id}/close/confirm", {
      ...atDecree,
      headers: { "If-Match": batch.decree.etag },
    }),
    200,
  );

  // the partner reads its decision and accepts it
  const decision = ok("read the decision", await me.evaluation.GET("/v1/decisions/{decision_id}", atDecision), 200);
  const accepted = ok(
    "accept",
    await me.evaluation.POST("/v1/decisions/{decision_id}/accept", { ...atDecision, headers: { "If-Match": decision.etag } }),
    200,
  );

  // monitoring: the project starts with its advance ordered (the worker brings the acceptance)
  const project = await until("the project", async () => {
    const { data } = await officer.monitoring.GET("/v1/projects", { params: { query: { company_id: state.company_id } } });
    return data?.items[0];
  });
  const atProject = { params: { path: { project_id: project.id } } };
  const payments = ok(
    "payments",
    await officer.monitoring.GET("/v1/payments", { params: { query: { project_id: project.id } } }),
    200,
  );
  const advance = payments.items[0];
  if (!advance) throw new Error("no advance ordered");
  const read = await me.monitoring.GET("/v1/projects/{project_id}", atProject);
  ok("read the project", read, 200);
  const company = ok(
    "the company",
    await officer.intake.GET("/v1/companies/{company_id}", { params: { path: { company_id: state.company_id } } }),
    200,
  );
  const ibanBody: Mo["schemas"]["IbanIn"] = {
    iban: env("DESK_IBAN"),
    holder: { name: company.name, tax_code: company.vat_number },
  };
  const change = await me.monitoring.PUT("/v1/projects/{project_id}/iban", {
    ...atProject,
    body: ibanBody,
    headers: { "If-Match": etagOf("project", read.response) },
  });
  // the advance is ordered: the partner's change waits for an officer's confirmation
  const pending = ok("IBAN change", change, 202) as Mo["schemas"]["IbanChangeOut"];
  ok(
    "confirm the IBAN",
    await officer.monitoring.POST("/v1/projects/{project_id}/iban-changes/{change_id}/confirm", {
      params: { path: { project_id: project.id, change_id: pending.id } },
      headers: { "If-Match": pending.etag },
    }),
    200,
  );
  const atPayment = { params: { path: { payment_id: advance.id } } };
  const ordered = ok("the advance", await officer.monitoring.GET("/v1/payments/{payment_id}", atPayment), 200);
  ok(
    "second officer confirms the payment",
    await second.monitoring.POST("/v1/payments/{payment_id}/confirm", { ...atPayment, headers: { "If-Match": ordered.etag } }),
    200,
  );
  const paid = ok(
    "paid",
    await officer.monitoring.POST("/v1/payments/{payment_id}/paid", { ...atPayment, headers: { "If-Match": ordered.etag } }),
    200,
  );

  // the partner opens the final claim and adds a line
  const opened = await me.monitoring.POST("/v1/projects/{project_id}/claims", { ...atProject, body: { kind: "final" } });
  const claim = ok("open a claim", opened, 201);
  const lineBody = JSON.parse(env("DESK_CLAIM_LINE")) as Mo["schemas"]["LineCreate"];
  const line = ok(
    "claim line",
    await me.monitoring.POST("/v1/claims/{claim_id}/lines", {
      params: { path: { claim_id: claim.id } },
      body: lineBody,
      headers: { "If-Match": etagOf("claim", opened.response) },
    }),
    201,
  );
  return {
    allocation: { funded: allocation.funded, waiting: allocation.waiting },
    decision_outcome: created.outcome,
    decree_status: closed.status,
    decision_status: accepted.status,
    project_status: project.status,
    advance: { kind: paid.kind, amount: paid.amount, status: paid.status },
    claim: { id: claim.id, kind: claim.kind, status: claim.status, line_amount: line.taxable_amount },
  };
}

const phase = process.argv[2];
try {
  const out = phase === "apply" ? await apply() : phase === "decide" ? await decide() : undefined;
  if (out === undefined) throw new Error(`unknown phase ${phase}`);
  process.stdout.write(JSON.stringify(out) + "\n");
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
