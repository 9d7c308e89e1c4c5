// Express 4 or 5 (LF_EXPRESS=express4|express5), default options, one handler per protected
// path. Every handler invocation appends "<route> <x-fw-seq>\n" to $LF_FW_LOG.
"use strict";
const fs = require("fs");
const express = require(process.env.LF_EXPRESS);
const log = process.env.LF_FW_LOG;
const app = express();
function handler(route) {
  return (req, res) => {
    fs.appendFileSync(log, `${route} ${req.get("x-fw-seq") || "-"}\n`);
    res.type("text/plain").send(`LF-HANDLER ${route}\n`);
  };
}
app.post("/linksfield/sms", handler("md5"));
app.post("/cube/notify", handler("cube"));
app.listen(Number(process.env.PORT), "127.0.0.1", () => console.log("listening"));
