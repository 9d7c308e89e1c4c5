<?php
// PHP runtime of test_parsers.py: JSON lines in, JSON lines out (protocol in py_views.py).
// View php: json_decode($body, true) for JSON bodies, parse_str() for form bodies (what fills
// $_POST: `.`, space and `[` in keys become `_`, `a[b]` becomes a nested array, the last
// duplicate wins) and parse_str() of the query (what fills $_GET).
ini_set('serialize_precision', '-1');

function typed($v) {
    if ($v === null) return ['', 'null'];
    if (is_bool($v)) return [$v ? 'true' : 'false', 'bool'];
    if (is_string($v)) return [$v, 'string'];
    if (is_int($v)) return [(string)$v, 'number'];
    if (is_float($v)) {
        if (is_nan($v) || is_infinite($v)) return [(string)$v, 'number'];
        return [json_encode($v), 'number'];
    }
    $j = json_encode($v, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE);
    $j = $j === false ? '' : $j;
    // json_decode($b, true) makes `{}` and `[]` the same empty array: PHP cannot tell them apart.
    if (count($v) === 0) return [$j, 'empty-array'];
    return [$j, array_keys($v) === range(0, count($v) - 1) ? 'array' : 'object'];
}

function header_of($req, $name) {
    foreach ($req['headers'] as $h) {
        if (strtolower($h[0]) === $name) return $h[1];
    }
    return '';
}

function view_of($req, $body) {
    $path = $req['path'];
    $q = strpos($path, '?') === false ? '' : substr($path, strpos($path, '?') + 1);
    $get = [];
    parse_str($q, $get);
    $query = [];
    foreach ($get as $k => $v) $query[] = [(string)$k, typed($v)[0]];
    $ct = strtolower(header_of($req, 'content-type'));
    if (strpos($ct, 'json') !== false) {
        $arr = json_decode($body, true, 512);
        if (json_last_error() !== JSON_ERROR_NONE) return ['error' => 'json_decode: ' . json_last_error_msg()];
        if (!is_array($arr) || (array_keys($arr) === range(0, count($arr) - 1) && count($arr) > 0)) {
            return ['error' => 'top-level ' . gettype($arr)];
        }
    } elseif (strpos($ct, 'x-www-form-urlencoded') !== false) {
        $arr = [];
        parse_str($body, $arr);
    } else {
        return ['error' => 'no body parser for this content type'];
    }
    $params = [];
    foreach ($arr as $k => $v) $params[] = array_merge([(string)$k], typed($v));
    // A list of [key, value] pairs: a PHP array would turn a key like "0" into a list index.
    $got = [];
    foreach ($req['keys'] as $k) $got[] = [$k, array_key_exists($k, $arr) ? typed($arr[$k]) : null];
    return ['params' => $params, 'get' => $got, 'query' => $query];
}

while (($line = fgets(STDIN)) !== false) {
    if (trim($line) === '') continue;
    $req = json_decode($line, true);
    $body = base64_decode($req['body']);
    $v = view_of($req, $body);
    $out = json_encode(['id' => $req['id'], 'views' => ['php' => $v]],
                       JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR);
    fwrite(STDOUT, $out . "\n");
}
