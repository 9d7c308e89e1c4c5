module lfe2e/goapp

go 1.19
