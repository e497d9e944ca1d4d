Running 10s test @ http://127.0.0.1:18205/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    93.99ms  107.22ms 911.51ms   85.09%
    Req/Sec   257.09    377.75     1.07k    81.00%
  2561 requests in 10.00s, 550.33KB read
Requests/sec:    255.99
Transfer/sec:     55.01KB
