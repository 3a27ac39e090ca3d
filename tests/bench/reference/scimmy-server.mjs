// SCIMMY (with scimmy-routers on express) serving users from memory: the node reference of
// the SCIM benchmark (tests/bench/scim_bench.py). Usage: node scimmy-server.mjs PORT TOKEN
import { randomUUID } from "node:crypto";
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const [port, token] = process.argv.slice(2);
const users = new Map();

SCIMMY.Resources.declare(SCIMMY.Resources.User)
    .ingress((resource, instance) => {
        const now = new Date();
        const old = resource.id ? users.get(resource.id) : undefined;
        if (resource.id && !old) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
        const id = resource.id ?? randomUUID();
        const user = { ...instance, id, meta: { created: old?.meta.created ?? now, lastModified: now } };
        users.set(id, user);
        return user;
    })
    .egress((resource) => {
        if (resource.id) {
            const user = users.get(resource.id);
            if (!user) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
            return user;
        }
        const all = [...users.values()];
        return resource.filter ? resource.filter.match(all) : all;
    })
    .degress((resource) => {
        if (!users.delete(resource.id)) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
    });

const app = express();
app.get("/healthz", (_req, res) => res.send("ok"));
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    handler: (request) => {
        if (request.header("Authorization") !== `Bearer ${token}`) throw new Error("Authorization not detected!");
        return "bench";
    },
}));
app.listen(Number(port), "127.0.0.1");
