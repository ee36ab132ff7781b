import { DCLinter } from "dclint";
const l = new DCLinter({ rules: { "service-keys-order": 0 }, quiet: false, debug: false, exclude: [] });
const r = l.lintFiles(["../../docker-compose.kafka.yml"], false);
console.log(r.map(x => [x.filePath, x.errorCount, x.warningCount, x.messages.length]));
