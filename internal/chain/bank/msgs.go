package bank
