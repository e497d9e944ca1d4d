Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   230.69ms  233.03ms   1.11s    82.46%
    Req/Sec    92.53    121.20   393.00     79.80%
  918 requests in 10.02s, 197.01KB read
Requests/sec:     91.64
Transfer/sec:     19.67KB
