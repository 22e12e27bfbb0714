/** Every deployment of the tenant, refreshed every two seconds. */
import { api } from "../api.ts";
import type { Deployment } from "../types.ts";
import { ErrorNote, Status, ago, usePoll } from "../ui.tsx";

export function Deployments() {
  const { data, error } = usePoll(() => api<Deployment[]>("GET", "/deploy/list"), 2000);
  return (
    <section aria-labelledby="deployments-title">
      <div className="heading">
        <h1 id="deployments-title">Deployments</h1>
        <a className="button" href="#/deployments/new">
          Deploy a model
        </a>
      </div>
      <ErrorNote error={error} />
      {data && data.length === 0 ? <p className="empty">No deployments yet. Deploy a model to see it here.</p> : null}
      {data && data.length > 0 ? (
        <table>
          <caption className="sr-only">Deployments, refreshed every 2 seconds</caption>
          <thead>
            <tr>
              <th scope="col">Model</th>
              <th scope="col">Status</th>
              <th scope="col">Replicas</th>
              <th scope="col">GPU</th>
              <th scope="col">Engine</th>
              <th scope="col">Created</th>
              <th scope="col">Deploy id</th>
            </tr>
          </thead>
          <tbody>
            {data.map((d) => (
              <tr key={d.deploy_id}>
                <td>
                  <a href={`#/deployments/${d.deploy_id}`}>
                    {d.model_name}:{d.version}
                  </a>
                  {d.fail_reason ? <div className="reason">{d.fail_reason}</div> : null}
                </td>
                <td>
                  <Status value={d.status} />
                </td>
                <td>
                  {d.instances.running} ready{d.instances.pending ? `, ${d.instances.pending} starting` : ""}
                </td>
                <td>
                  {d.config.num_gpus}× {d.config.gpu}
                </td>
                <td>{d.config.engine}</td>
                <td>{ago(d.created_at)}</td>
                <td>
                  <code>{d.deploy_id}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
