/**
 * The certificates a test control plane needs, made with openssl into its own folder: one
 * CA; serving certificates for etcd, the API server and kwok's kubelet server (127.0.0.1 and
 * localhost only);
 * client certificates for the API server → etcd, the controller manager, the scheduler
 * and the admin (system:masters); the service-account signing key pair.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export interface ClusterCerts {
  dir: string;
  caCert: string;
  caKey: string;
  etcdCert: string;
  etcdKey: string;
  apiserverCert: string;
  apiserverKey: string;
  /** kwok's kubelet server (container logs): the API server verifies it with the CA. */
  kwokCert: string;
  kwokKey: string;
  /** The API server's client certificate for etcd. */
  apiserverEtcdCert: string;
  apiserverEtcdKey: string;
  adminCert: string;
  adminKey: string;
  controllerManagerCert: string;
  controllerManagerKey: string;
  schedulerCert: string;
  schedulerKey: string;
  saKey: string;
  saPub: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function leaf(dir: string, name: string, subject: string, ext: string): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", subject], dir);
  openssl(
    ["x509", "-req", "-in", csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", cert, "-days", "2", "-sha256", "-extfile", extFile],
    dir,
  );
  return { cert, key };
}

const SERVER = (sans: string) =>
  `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=${sans}\n`;
const CLIENT = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n";

export function makeClusterCerts(dir: string): ClusterCerts {
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=infera-test-ca",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ],
    dir,
  );
  const loopback = "IP:127.0.0.1,DNS:localhost";
  const etcd = leaf(dir, "etcd", "/CN=etcd", SERVER(loopback));
  // kubernetes.default.svc… names are what in-cluster clients verify; they resolve nowhere here.
  const apiserver = leaf(
    dir,
    "apiserver",
    "/CN=kube-apiserver",
    SERVER(`${loopback},DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local`),
  );
  const kwok = leaf(dir, "kwok", "/CN=kwok-kubelet", SERVER(loopback));
  const apiserverEtcd = leaf(dir, "apiserver-etcd", "/CN=kube-apiserver-etcd-client", CLIENT);
  const admin = leaf(dir, "admin", "/O=system:masters/CN=infera-test-admin", CLIENT);
  const kcm = leaf(dir, "controller-manager", "/CN=system:kube-controller-manager", CLIENT);
  const sched = leaf(dir, "scheduler", "/CN=system:kube-scheduler", CLIENT);
  openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key"], dir);
  openssl(["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"], dir);
  return {
    dir,
    caCert: join(dir, "ca.crt"),
    caKey: join(dir, "ca.key"),
    etcdCert: etcd.cert,
    etcdKey: etcd.key,
    apiserverCert: apiserver.cert,
    apiserverKey: apiserver.key,
    kwokCert: kwok.cert,
    kwokKey: kwok.key,
    apiserverEtcdCert: apiserverEtcd.cert,
    apiserverEtcdKey: apiserverEtcd.key,
    adminCert: admin.cert,
    adminKey: admin.key,
    controllerManagerCert: kcm.cert,
    controllerManagerKey: kcm.key,
    schedulerCert: sched.cert,
    schedulerKey: sched.key,
    saKey: join(dir, "sa.key"),
    saPub: join(dir, "sa.pub"),
  };
}
