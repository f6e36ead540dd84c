const http = require('http');
const port = 3000;
const server = http.createServer((req, res) => {
  res.statusCode = 200;
  res.setHeader('Content-Type', 'text/plain');
  res.end(`Hello World! This web app is running on ${process.arch} processor architecture`);
});
server.listen(port, () => {
  console.log(`Server running on ${process.arch} architecture.`);
});
