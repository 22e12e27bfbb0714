/**
 * The console: sign in with an API key (kept in sessionStorage), then deployments (live),
 * a deploy form, keys, usage charts and a chat playground. Pages are hash routes
 * (`#/deployments/dep_…`), so the gateway serves one static page and links can be shared.
 */
import { useEffect, useState } from "react";
import { storedKey, storeKey } from "./api.ts";
import { DeploymentDetail } from "./pages/DeploymentDetail.tsx";
import { Deployments } from "./pages/Deployments.tsx";
import { Keys } from "./pages/Keys.tsx";
import { Login } from "./pages/Login.tsx";
import { NewDeployment } from "./pages/NewDeployment.tsx";
import { Playground } from "./pages/Playground.tsx";
import { UsagePage } from "./pages/Usage.tsx";

const NAV = [
  ["#/deployments", "Deployments"],
  ["#/deployments/new", "Deploy a model"],
  ["#/keys", "API keys"],
  ["#/usage", "Usage"],
  ["#/playground", "Playground"],
] as const;

function useHash(): string {
  const [hash, setHash] = useState(location.hash || "#/deployments");
  useEffect(() => {
    const on = () => setHash(location.hash || "#/deployments");
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return hash;
}

export function navigate(hash: string): void {
  location.hash = hash;
}

function page(hash: string) {
  const [path] = hash.slice(1).split("?");
  if (path === "/deployments/new") return <NewDeployment />;
  const m = /^\/deployments\/([\w-]+)$/.exec(path ?? "");
  if (m) return <DeploymentDetail id={m[1]!} />;
  if (path === "/keys") return <Keys />;
  if (path === "/usage") return <UsagePage />;
  if (path === "/playground") return <Playground />;
  return <Deployments />;
}

export function App() {
  const [key, setKey] = useState(storedKey());
  const hash = useHash();
  const current = NAV.filter(([h]) => hash === h || hash.startsWith(`${h}/`)).at(-1)?.[0] ?? (hash.startsWith("#/deployments") ? "#/deployments" : undefined);
  useEffect(() => {
    const title = NAV.find(([h]) => h === current)?.[1];
    document.title = title ? `${title} · Infera console` : "Infera console";
  }, [current]);
  if (!key)
    return (
      <Login
        onSignedIn={(k) => {
          storeKey(k);
          setKey(k);
        }}
      />
    );
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Infera</span>
        <nav aria-label="Console">
          <ul>
            {NAV.map(([h, label]) => (
              <li key={h}>
                <a href={h} aria-current={current === h ? "page" : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <button
          type="button"
          className="quiet"
          onClick={() => {
            storeKey(null);
            setKey(null);
          }}
        >
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {page(hash)}
      </main>
    </>
  );
}
